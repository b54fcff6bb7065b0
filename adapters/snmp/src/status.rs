//! The one table mapping information-model errors to SNMP error-status
//! (RFC 3416), and SNMPv2 error-status to SNMPv1 (RFC 3584 4.4).

use halyard_cluster_model::port::ModelError;
use halyard_cluster_model::value::ValueError;

/// SNMPv2 error-status values.
pub mod code {
    pub const NO_ERROR: u32 = 0;
    pub const TOO_BIG: u32 = 1;
    pub const NO_SUCH_NAME: u32 = 2;
    pub const BAD_VALUE: u32 = 3;
    pub const READ_ONLY: u32 = 4;
    pub const GEN_ERR: u32 = 5;
    pub const NO_ACCESS: u32 = 6;
    pub const WRONG_TYPE: u32 = 7;
    pub const WRONG_LENGTH: u32 = 8;
    pub const WRONG_ENCODING: u32 = 9;
    pub const WRONG_VALUE: u32 = 10;
    pub const NO_CREATION: u32 = 11;
    pub const INCONSISTENT_VALUE: u32 = 12;
    pub const RESOURCE_UNAVAILABLE: u32 = 13;
    pub const COMMIT_FAILED: u32 = 14;
    pub const UNDO_FAILED: u32 = 15;
    pub const AUTHORIZATION_ERROR: u32 = 16;
    pub const NOT_WRITABLE: u32 = 17;
    pub const INCONSISTENT_NAME: u32 = 18;
}

/// The error-status a SET reports when the model refuses a change.
pub fn error_status(e: &ModelError) -> u32 {
    use code::*;
    match e {
        ModelError::NoSuchObject { .. } | ModelError::NoSuchClass { .. } => NO_CREATION,
        ModelError::NoCreation { .. } => NO_CREATION,
        ModelError::NoSuchAttribute { .. }
        | ModelError::NoSuchOperation { .. }
        | ModelError::NotWritable { .. } => NOT_WRITABLE,
        ModelError::InvalidValue { error, .. } => match error {
            ValueError::WrongType { .. } => WRONG_TYPE,
            ValueError::WrongLength { .. } => WRONG_LENGTH,
            ValueError::WrongValue { .. } => WRONG_VALUE,
        },
        ModelError::Inconsistent { .. } | ModelError::AlreadyExists { .. } => INCONSISTENT_VALUE,
        // A rule denying the variable is VACM's notInView: noAccess
        // (RFC 3416 4.2.5).
        ModelError::AccessDenied { .. } => NO_ACCESS,
        ModelError::Conflict { .. } | ModelError::Unavailable { .. } => RESOURCE_UNAVAILABLE,
        ModelError::CommitFailed { .. } => COMMIT_FAILED,
        // The outcome is unknown: the change may have been applied.
        ModelError::Timeout => UNDO_FAILED,
    }
}

/// SNMPv1 has five error codes (RFC 3584 4.4).
pub fn to_v1(status: u32) -> u32 {
    use code::*;
    match status {
        NO_ERROR | TOO_BIG | NO_SUCH_NAME | BAD_VALUE | READ_ONLY | GEN_ERR => status,
        NO_ACCESS | NOT_WRITABLE | NO_CREATION | INCONSISTENT_NAME | AUTHORIZATION_ERROR => {
            NO_SUCH_NAME
        }
        WRONG_TYPE | WRONG_LENGTH | WRONG_ENCODING | WRONG_VALUE | INCONSISTENT_VALUE => BAD_VALUE,
        _ => GEN_ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::code::*;
    use super::*;

    #[test]
    fn model_errors_map_to_error_status() {
        let s = || String::from("x");
        let inv = |error| ModelError::InvalidValue {
            attribute: s(),
            error,
        };
        let table: Vec<(ModelError, u32, u32)> = vec![
            (
                ModelError::NoSuchObject { name: s() },
                NO_CREATION,
                NO_SUCH_NAME,
            ),
            (
                ModelError::NoSuchClass { class: s() },
                NO_CREATION,
                NO_SUCH_NAME,
            ),
            (
                ModelError::NoCreation {
                    name: s(),
                    reason: s(),
                },
                NO_CREATION,
                NO_SUCH_NAME,
            ),
            (
                ModelError::NoSuchAttribute {
                    class: s(),
                    attribute: s(),
                },
                NOT_WRITABLE,
                NO_SUCH_NAME,
            ),
            (
                ModelError::NoSuchOperation {
                    class: s(),
                    operation: s(),
                },
                NOT_WRITABLE,
                NO_SUCH_NAME,
            ),
            (
                ModelError::NotWritable { attribute: s() },
                NOT_WRITABLE,
                NO_SUCH_NAME,
            ),
            (
                inv(ValueError::WrongType { expected: s() }),
                WRONG_TYPE,
                BAD_VALUE,
            ),
            (
                inv(ValueError::WrongLength { max: 3 }),
                WRONG_LENGTH,
                BAD_VALUE,
            ),
            (
                inv(ValueError::WrongValue { reason: s() }),
                WRONG_VALUE,
                BAD_VALUE,
            ),
            (
                ModelError::Inconsistent { reason: s() },
                INCONSISTENT_VALUE,
                BAD_VALUE,
            ),
            (
                ModelError::AlreadyExists { name: s() },
                INCONSISTENT_VALUE,
                BAD_VALUE,
            ),
            (
                ModelError::AccessDenied { reason: s() },
                NO_ACCESS,
                NO_SUCH_NAME,
            ),
            (
                ModelError::Conflict { reason: s() },
                RESOURCE_UNAVAILABLE,
                GEN_ERR,
            ),
            (
                ModelError::Unavailable { reason: s() },
                RESOURCE_UNAVAILABLE,
                GEN_ERR,
            ),
            (
                ModelError::CommitFailed { reason: s() },
                COMMIT_FAILED,
                GEN_ERR,
            ),
            (ModelError::Timeout, UNDO_FAILED, GEN_ERR),
        ];
        for (e, v2, v1) in table {
            assert_eq!(error_status(&e), v2, "{e:?}");
            assert_eq!(to_v1(error_status(&e)), v1, "{e:?}");
        }
    }
}
