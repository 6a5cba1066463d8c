//! What a new password must satisfy. Checked whenever a password is chosen (a change, a user
//! created or reset by an administrator); never at login, so that tightening the policy locks
//! nobody out.

use crate::auth::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

/// Why a new password is refused; each case has a stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyViolation {
    #[error("the new password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the new password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the new password must not contain the user name")]
    ContainsUsername,
    #[error("the new password must not be the default password of a first start")]
    IsDefault,
}

impl PasswordPolicyViolation {
    pub fn code(&self) -> &'static str {
        match self {
            PasswordPolicyViolation::TooShort => "password_too_short",
            PasswordPolicyViolation::TooLong => "password_too_long",
            PasswordPolicyViolation::ContainsUsername => "password_contains_username",
            PasswordPolicyViolation::IsDefault => "password_is_default",
        }
    }
}

/// Checks `password` as the new password of `username`. `default_password` is this installation's
/// first-start admin password, which is known to anyone who read the install guide.
pub fn check_new_password(
    username: &str,
    password: &str,
    default_password: &str,
) -> Result<(), PasswordPolicyViolation> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyViolation::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordPolicyViolation::TooLong);
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(PasswordPolicyViolation::ContainsUsername);
    }
    if password == default_password || password == crate::config::DEFAULT_ADMIN_PASSWORD {
        return Err(PasswordPolicyViolation::IsDefault);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(username: &str, password: &str, expected: Result<(), PasswordPolicyViolation>) {
        assert_eq!(
            check_new_password(username, password, "Install-Default-1"),
            expected,
            "{password:?}"
        );
    }

    #[test]
    fn policy() {
        use PasswordPolicyViolation::*;
        check("alice", "correct horse", Ok(()));
        check("alice", "short", Err(TooShort));
        check("alice", "ééééééé", Err(TooShort));
        check("alice", "éééééééé", Ok(()));
        check("alice", &"x".repeat(1025), Err(TooLong));
        check("alice", "my-ALICE-pass", Err(ContainsUsername));
        check("admin", "Kuboard123", Err(IsDefault));
        check("bob", "Install-Default-1", Err(IsDefault));
    }
}
