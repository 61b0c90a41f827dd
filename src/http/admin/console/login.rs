//! The sign-in page: one form for the admin token, which never goes in a URL.

use maud::{DOCTYPE, Markup, html};

use super::layout::head;

/// `error` says why the last attempt failed.
pub(super) fn render(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.login {
                    div.card {
                        h1 { "hooklatch console" }
                        p.muted { "Enter the admin token (" code { "admin_token" } " or " code { "HOOKLATCH_ADMIN_TOKEN" } ")." }
                        @if let Some(error) = error { p.error id="login-error" { (error) } }
                        form method="post" action="/admin/login" {
                            label { "Admin token" input type="password" name="token" id="token" autocomplete="current-password" required autofocus; }
                            button type="submit" id="sign-in" { "Sign in" }
                        }
                    }
                }
            }
        }
    }
}
