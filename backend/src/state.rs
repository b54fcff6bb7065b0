//! Component states and the availability transitions of FIG. 5.

use halyard_cluster_model::model::AvailabilityState;

/// A transition FIG. 5 does not allow. It is never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal availability transition {from} -> {to}")]
pub struct IllegalTransition {
    pub from: AvailabilityState,
    pub to: AvailabilityState,
}

/// Checks a transition against FIG. 5:
/// off-line -> spare | secondary | primary; spare -> off-line | secondary |
/// primary; secondary -> primary | spare | off-line; primary -> spare | off-line.
pub fn check_transition(
    from: AvailabilityState,
    to: AvailabilityState,
) -> Result<(), IllegalTransition> {
    use AvailabilityState::{OffLine, Primary, Secondary, Spare};
    let ok = matches!(
        (from, to),
        (OffLine, Spare | Secondary | Primary)
            | (Spare, OffLine | Secondary | Primary)
            | (Secondary, Primary | Spare | OffLine)
            | (Primary, Spare | OffLine)
    );
    if ok {
        Ok(())
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// The legal path from one state to another: one step, or two through
/// `spare` (primary -> secondary goes primary -> spare -> secondary).
pub fn path(from: AvailabilityState, to: AvailabilityState) -> Vec<AvailabilityState> {
    if from == to {
        return Vec::new();
    }
    if check_transition(from, to).is_ok() {
        return vec![to];
    }
    vec![AvailabilityState::Spare, to]
}

#[cfg(test)]
mod tests {
    use super::*;
    use AvailabilityState::*;

    #[test]
    fn exactly_the_transitions_of_fig_5() {
        let all = AvailabilityState::ALL;
        let allowed = [
            (OffLine, Spare),
            (OffLine, Secondary),
            (OffLine, Primary),
            (Spare, OffLine),
            (Spare, Secondary),
            (Spare, Primary),
            (Secondary, Primary),
            (Secondary, Spare),
            (Secondary, OffLine),
            (Primary, Spare),
            (Primary, OffLine),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert_eq!(path(Primary, Secondary), vec![Spare, Secondary]);
        for from in all {
            for to in all {
                let mut cur = from;
                for step in path(from, to) {
                    check_transition(cur, step).unwrap();
                    cur = step;
                }
                assert_eq!(cur, to);
            }
        }
    }
}
