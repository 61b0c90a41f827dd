-- hooklatch copy: this transaction's rows skip the totals triggers (migration 011), for
-- the copy rebuilds the totals from the rows at the end. Transaction-local (`true`): it
-- ends with the batch's commit, so the pooled connection counts as usual afterwards.
SELECT set_config('hooklatch.bulk', 'on', true)
