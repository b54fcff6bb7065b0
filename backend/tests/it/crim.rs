use std::collections::HashMap;
use std::time::Duration;

use halyard_backend::crim::{
    Crim, CrimError, Effect, GroupMember, Input, Reconfig, SgConfig, ladder,
};
use halyard_backend::events::EventKind;
use halyard_backend::state::check_transition;
use halyard_cluster_model::model::{
    AdminState, AvailabilityState, RecoveryAction, RedundancyModel, StandbyMode,
};
use tokio::time::Instant;

use AvailabilityState::{OffLine, Primary, Secondary, Spare};

fn group(
    model: RedundancyModel,
    members: &[&str],
    sis: &[&str],
    secondaries: u32,
    first: RecoveryAction,
) -> SgConfig {
    SgConfig {
        name: "sg".into(),
        model,
        standby: StandbyMode::Hot,
        preferred_secondaries: secondaries,
        first_recovery: first,
        max_restarts: 2,
        probation: Duration::from_secs(60),
        members: members.iter().map(|s| s.to_string()).collect(),
        sis: sis.iter().map(|s| s.to_string()).collect(),
    }
}

/// Replays inputs, checking that every state change is a legal FIG. 5
/// transition from the component's previous state.
struct Replay {
    crim: Crim,
    states: HashMap<String, AvailabilityState>,
    now: Instant,
    effects: Vec<Effect>,
}

impl Replay {
    fn new(cfg: SgConfig) -> Self {
        Replay {
            crim: Crim::new(vec![cfg]),
            states: HashMap::new(),
            now: Instant::now(),
            effects: Vec::new(),
        }
    }

    fn run(&mut self, input: Input) -> Vec<Effect> {
        let fx = self.crim.handle(input, self.now).expect("input accepted");
        self.check(fx)
    }

    fn reconfigure(&mut self, r: Reconfig) -> Vec<Effect> {
        let fx = self
            .crim
            .reconfigure(&r, "hot swap")
            .expect("change accepted");
        self.check(fx)
    }

    fn check(&mut self, fx: Vec<Effect>) -> Vec<Effect> {
        for e in &fx {
            if let Effect::Event(EventKind::StateChanged {
                component,
                from,
                to,
                ..
            }) = e
            {
                let from: AvailabilityState = from.parse().unwrap();
                let to: AvailabilityState = to.parse().unwrap();
                let prev = self.states.get(component).copied().unwrap_or(OffLine);
                assert_eq!(
                    prev, from,
                    "{component}: event says from {from}, was {prev}"
                );
                check_transition(from, to).expect("CRIM only makes FIG. 5 transitions");
                self.states.insert(component.clone(), to);
            }
        }
        self.effects.extend(fx.clone());
        fx
    }

    fn register(&mut self, c: &str) -> Vec<Effect> {
        let inc = self.crim.component(c).unwrap().incarnation + 1;
        self.run(Input::Registered {
            component: c.into(),
            incarnation: inc,
        })
    }

    fn fail(&mut self, c: &str) -> Vec<Effect> {
        let inc = self.crim.component(c).unwrap().incarnation;
        self.run(Input::Failed {
            component: c.into(),
            incarnation: inc,
            reason: "killed".into(),
            escalated: false,
        })
    }

    fn state(&self, c: &str) -> AvailabilityState {
        self.crim.component(c).unwrap().avail
    }
}

fn recoveries(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Event(EventKind::Recovery { action, .. }) => Some(action.clone()),
            _ => None,
        })
        .collect()
}

fn failovers(fx: &[Effect]) -> Vec<(String, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Event(EventKind::FailedOver { from, to, .. }) => {
                Some((from.clone(), to.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn two_n_fails_over_to_the_secondary_and_the_restarted_primary_comes_back_as_secondary() {
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a", "b"],
        &["si=1"],
        1,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    assert_eq!(r.state("a"), Primary);
    r.register("b");
    assert_eq!(r.state("b"), Secondary);
    assert_eq!(
        r.crim.si("si=1").unwrap(),
        (Some("a".into()), vec!["b".into()])
    );

    let fx = r.fail("a");
    assert_eq!(recoveries(&fx), ["fail-over"]);
    assert_eq!(failovers(&fx), [("a".to_string(), "b".to_string())]);
    assert!(
        fx.contains(&Effect::Restart {
            component: "a".into(),
            reason: fx
                .iter()
                .find_map(|e| match e {
                    Effect::Restart { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
                .unwrap()
        })
    );
    assert!(fx.iter().any(
        |e| matches!(e, Effect::Assign { component, state: Primary, .. } if component == "b")
    ));
    assert_eq!((r.state("a"), r.state("b")), (OffLine, Primary));

    r.register("a");
    assert_eq!((r.state("a"), r.state("b")), (Secondary, Primary));
    assert_eq!(
        r.crim.si("si=1").unwrap(),
        (Some("b".into()), vec!["a".into()])
    );
}

#[test]
fn n_plus_m_promotes_the_shared_secondary_and_refills_standby() {
    let mut r = Replay::new(group(
        RedundancyModel::NPlusM,
        &["p1", "p2", "p3", "s1"],
        &["si=1", "si=2", "si=3"],
        1,
        RecoveryAction::FailOver,
    ));
    for c in ["p1", "p2", "p3", "s1"] {
        r.register(c);
    }
    for (si, p) in [("si=1", "p1"), ("si=2", "p2"), ("si=3", "p3")] {
        assert_eq!(
            r.crim.si(si).unwrap(),
            (Some(p.into()), vec!["s1".into()]),
            "{si}"
        );
    }
    assert_eq!(r.state("s1"), Secondary);
    let fx = r.fail("p2");
    assert_eq!(failovers(&fx), [("p2".to_string(), "s1".to_string())]);
    assert_eq!(r.state("s1"), Primary);
    // No standby left until p2 is back.
    assert_eq!(r.crim.si("si=1").unwrap().1, Vec::<String>::new());
    r.register("p2");
    assert_eq!(r.state("p2"), Secondary);
    for si in ["si=1", "si=2", "si=3"] {
        assert_eq!(r.crim.si(si).unwrap().1, vec!["p2".to_string()], "{si}");
    }
    assert_eq!(r.crim.si("si=2").unwrap().0.as_deref(), Some("s1"));
}

#[test]
fn n_way_active_spreads_work_and_moves_it_off_a_failed_member() {
    let mut r = Replay::new(group(
        RedundancyModel::NWayActive,
        &["a", "b", "c"],
        &["si=1", "si=2", "si=3"],
        0,
        RecoveryAction::HotRestart,
    ));
    for c in ["a", "b", "c"] {
        r.register(c);
    }
    let owners: Vec<String> = ["si=1", "si=2", "si=3"]
        .iter()
        .map(|s| r.crim.si(s).unwrap().0.unwrap())
        .collect();
    let mut sorted = owners.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"], "one SI each: {owners:?}");
    assert!(["a", "b", "c"].iter().all(|c| r.state(c) == Primary));

    // Escalate b past its restarts: failure 3 is a fail-over in load sharing.
    r.fail("b");
    r.register("b");
    r.fail("b");
    r.register("b");
    let fx = r.fail("b");
    assert_eq!(recoveries(&fx), ["fail-over"]);
    assert_eq!(r.state("b"), OffLine);
    for s in ["si=1", "si=2", "si=3"] {
        let owner = r.crim.si(s).unwrap().0.unwrap();
        assert_ne!(owner, "b", "{s} still on the failed member");
    }
    r.register("b");
    assert_eq!(r.state("b"), Primary);
    let b_load = ["si=1", "si=2", "si=3"]
        .iter()
        .filter(|s| r.crim.si(s).unwrap().0.as_deref() == Some("b"))
        .count();
    assert_eq!(b_load, 1, "work rebalanced onto the returning member");
}

#[test]
fn the_escalation_ladder_step_by_step() {
    let cfg = group(
        RedundancyModel::TwoN,
        &["a", "b"],
        &["si=1"],
        1,
        RecoveryAction::HotRestart,
    );
    assert_eq!(ladder(&cfg, 1), RecoveryAction::HotRestart);
    assert_eq!(ladder(&cfg, 2), RecoveryAction::HotRestart);
    assert_eq!(ladder(&cfg, 3), RecoveryAction::FailOver);
    assert_eq!(ladder(&cfg, 4), RecoveryAction::DisableComponent);

    let mut r = Replay::new(cfg);
    r.register("a");
    r.register("b");
    // 1st and 2nd failure: restart in place, keeping the primary role (no fail-over).
    for n in 1..=2 {
        let fx = r.fail("a");
        assert_eq!(recoveries(&fx), ["hot-restart"], "failure {n}");
        assert!(failovers(&fx).is_empty(), "failure {n} must not fail over");
        assert_eq!(r.crim.si("si=1").unwrap().0.as_deref(), Some("a"));
        r.register("a");
        assert_eq!(r.state("a"), Primary, "failure {n}: back as primary");
    }
    // 3rd: fail-over.
    let fx = r.fail("a");
    assert_eq!(recoveries(&fx), ["fail-over"]);
    assert_eq!(failovers(&fx), [("a".to_string(), "b".to_string())]);
    r.register("a");
    assert_eq!(r.state("a"), Secondary);
    // 4th: disabled, stopped, alarmed; not restarted.
    let fx = r.fail("a");
    assert_eq!(recoveries(&fx), ["disable-component"]);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Stop { component, .. } if component == "a"))
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Restart { .. })));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Event(EventKind::Alarm { clear: false, .. })))
    );
    assert_eq!(r.state("a"), OffLine);
    // The operator repairs it by unlocking: it restarts and serves again.
    let fx = r.run(Input::SetAdmin {
        component: "a".into(),
        admin: AdminState::Unlocked,
    });
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Restart { component, .. } if component == "a"))
    );
    r.register("a");
    assert_eq!(r.state("a"), Secondary);
    // Failures outside the probation window are forgotten.
    r.now += Duration::from_secs(61);
    let fx = r.fail("b");
    assert_eq!(recoveries(&fx), ["hot-restart"]);
}

#[test]
fn a_timed_switch_over_schedules_both_halves_at_one_instant() {
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a", "b"],
        &["si=1"],
        1,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    r.register("b");
    let at = |fx: &[Effect], who: &str| {
        fx.iter().find_map(|e| match e {
            Effect::Assign {
                component,
                state,
                at,
                ..
            } if component == who => Some((*state, *at)),
            _ => None,
        })
    };
    let t = 1_764_201_600_000_000_000;
    // The old primary is told to step down at the instant...
    let fx = r.run(Input::SwitchOver {
        component: "a".into(),
        at: Some(t),
    });
    assert_eq!(at(&fx, "a"), Some((Secondary, Some(t))));
    assert_eq!(at(&fx, "b"), None);
    // ... and once it promised to, its standby is told to take over at it.
    let fx = r.run(Input::Acked {
        component: "a".into(),
        state: Secondary,
    });
    assert_eq!(at(&fx, "b"), Some((Primary, Some(t))));
    assert_eq!((r.state("a"), r.state("b")), (Secondary, Primary));
    // Later assignments are immediate again.
    let fx = r.fail("b");
    assert_eq!(at(&fx, "a"), Some((Primary, None)));
}

#[test]
fn switch_over_lock_and_self_requested_offline_go_through_legal_states() {
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a", "b", "c"],
        &["si=1"],
        1,
        RecoveryAction::FailOver,
    ));
    for c in ["a", "b", "c"] {
        r.register(c);
    }
    assert_eq!(
        (r.state("a"), r.state("b"), r.state("c")),
        (Primary, Secondary, Spare)
    );
    // Switch-over in two decisions, so the pair never has two primaries:
    // the primary steps down (primary -> spare -> secondary) ...
    let fx = r.run(Input::SwitchOver {
        component: "a".into(),
        at: None,
    });
    assert!(failovers(&fx).is_empty());
    assert_eq!((r.state("a"), r.state("b")), (Secondary, Secondary));
    // ... and once it acknowledged, the secondary becomes primary.
    let fx = r.run(Input::Acked {
        component: "a".into(),
        state: Secondary,
    });
    assert_eq!(failovers(&fx), [("a".to_string(), "b".to_string())]);
    assert_eq!((r.state("a"), r.state("b")), (Secondary, Primary));
    // Switching over a component that is not primary is refused, nothing changes.
    assert!(
        r.crim
            .handle(
                Input::SwitchOver {
                    component: "c".into(),
                    at: None,
                },
                r.now
            )
            .is_err()
    );
    assert_eq!(r.state("c"), Spare);
    // Lock the primary: the secondary takes over, the spare becomes secondary.
    r.run(Input::SetAdmin {
        component: "b".into(),
        admin: AdminState::Locked,
    });
    assert_eq!(
        (r.state("a"), r.state("b"), r.state("c")),
        (Primary, OffLine, Secondary)
    );
    // A component's own request to go off-line (diagnostics) is handled the same way.
    r.run(Input::RequestOffline {
        component: "c".into(),
        reason: "diagnostics".into(),
    });
    assert_eq!(r.state("c"), OffLine);
    r.run(Input::SetAdmin {
        component: "b".into(),
        admin: AdminState::Unlocked,
    });
    assert_eq!(r.state("b"), Secondary);
    r.run(Input::RequestOnline {
        component: "c".into(),
    });
    assert_eq!(r.state("c"), Spare);
}

#[test]
fn stale_failures_and_unknown_components_are_typed_errors() {
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a", "b"],
        &["si=1"],
        1,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    r.register("b");
    let inc = r.crim.component("a").unwrap().incarnation;
    r.fail("a");
    r.register("a");
    let err = r
        .crim
        .handle(
            Input::Failed {
                component: "a".into(),
                incarnation: inc,
                reason: "late".into(),
                escalated: false,
            },
            r.now,
        )
        .unwrap_err();
    assert!(
        matches!(err, halyard_backend::crim::CrimError::Stale { .. }),
        "{err}"
    );
    assert!(
        r.crim
            .handle(
                Input::Restart {
                    component: "zz".into()
                },
                r.now
            )
            .is_err()
    );
    assert_eq!(r.state("a"), Secondary, "nothing applied");
}

fn stops(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { component, .. } => Some(component.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn components_and_group_members_appear_and_disappear_at_run_time() {
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a"],
        &["si"],
        1,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    assert_eq!(r.state("a"), Primary);

    // A member appears in a running group and becomes its standby.
    r.reconfigure(Reconfig {
        join: vec![GroupMember {
            group: "sg".into(),
            component: "b".into(),
            sis: vec![],
        }],
        ..Reconfig::default()
    });
    assert_eq!(r.state("b"), OffLine);
    r.register("b");
    assert_eq!(r.state("b"), Secondary);

    // The primary disappears: it is stopped and its standby takes over.
    let fx = r.reconfigure(Reconfig {
        leave: vec![GroupMember {
            group: "sg".into(),
            component: "a".into(),
            sis: vec![],
        }],
        ..Reconfig::default()
    });
    assert_eq!(stops(&fx), vec!["a".to_string()]);
    assert_eq!(failovers(&fx), vec![("a".into(), "b".into())]);
    assert_eq!(r.state("b"), Primary);
    assert!(r.crim.component("a").is_none());
    assert_eq!(r.crim.group("sg").unwrap().members, vec!["b".to_string()]);

    // A whole group appears, one member locked: that one is not assigned
    // (nor started: no restart effect) until it is unlocked.
    let fru = SgConfig {
        name: "fru".into(),
        members: vec!["x".into(), "y".into()],
        sis: vec!["fru/1".into(), "fru/2".into()],
        ..group(
            RedundancyModel::NoRedundancy,
            &[],
            &[],
            0,
            RecoveryAction::SoftReset,
        )
    };
    let fx = r.reconfigure(Reconfig {
        add_groups: vec![fru.clone()],
        locked: vec!["y".into()],
        ..Reconfig::default()
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Restart { .. })),
        "{fx:?}"
    );
    r.register("x");
    assert_eq!(r.state("x"), Primary);
    assert_eq!(r.crim.component("y").unwrap().admin, AdminState::Locked);
    assert_eq!(r.crim.si("fru/2"), Some((None, vec![])));
    let fx = r.run(Input::SetAdmin {
        component: "y".into(),
        admin: AdminState::Unlocked,
    });
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Restart { component, .. } if component == "y")),
        "unlocking a never-started component starts it: {fx:?}"
    );
    r.register("y");
    assert_eq!(r.state("y"), Primary);

    // A change that does not fit is refused whole: nothing of it applies.
    let before = r.crim.components();
    let e = r
        .crim
        .reconfigure(
            &Reconfig {
                join: vec![
                    GroupMember {
                        group: "sg".into(),
                        component: "c".into(),
                        sis: vec![],
                    },
                    GroupMember {
                        group: "sg".into(),
                        component: "x".into(),
                        sis: vec![],
                    },
                ],
                ..Reconfig::default()
            },
            "hot swap",
        )
        .unwrap_err();
    assert!(matches!(e, CrimError::Reconfig(_)), "{e}");
    assert_eq!(r.crim.components(), before);

    // The group goes with its members: off-line through legal states,
    // stopped, assignments removed.
    let fx = r.reconfigure(Reconfig {
        remove_groups: vec!["fru".into()],
        ..Reconfig::default()
    });
    let mut stopped = stops(&fx);
    stopped.sort();
    assert_eq!(stopped, vec!["x".to_string(), "y".to_string()]);
    assert_eq!(r.states["x"], OffLine);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Event(EventKind::Assignment { si, assigned: false, .. }) if si == "fru/1"
    )));
    assert!(r.crim.group("fru").is_none() && r.crim.si("fru/1").is_none());
    assert_eq!(r.crim.components().len(), 1);
}

#[test]
fn start_up_and_rebalancing_are_not_fail_overs_but_a_failure_is() {
    // N-way-active: the first member to register takes every SI, the
    // second takes one over. Nothing failed, so nothing is a fail-over.
    let mut r = Replay::new(group(
        RedundancyModel::NWayActive,
        &["a", "b"],
        &["si=1", "si=2"],
        0,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    assert_eq!(r.crim.si("si=2").unwrap().0.as_deref(), Some("a"));
    let fx = r.register("b");
    assert_eq!(r.crim.si("si=2").unwrap().0.as_deref(), Some("b"));
    assert!(
        fx.iter().any(|e| matches!(e,
            Effect::Event(EventKind::Assignment { si, component, assigned: true, .. })
                if si == "si=2" && component == "b")),
        "the move is still announced as assignments: {fx:?}"
    );
    assert_eq!(failovers(&r.effects), []);

    // A real failure moves b's SI to a: that is a fail-over.
    let fx = r.fail("b");
    assert_eq!(failovers(&fx), [("b".to_string(), "a".to_string())]);
    // b back from its restart takes work back: a rebalance again.
    let fx = r.register("b");
    assert_eq!(r.state("b"), Primary);
    assert_eq!(failovers(&fx), []);

    // 2N: the first primary and secondary are assignments, not fail-overs.
    let mut r = Replay::new(group(
        RedundancyModel::TwoN,
        &["a", "b"],
        &["si=1"],
        1,
        RecoveryAction::FailOver,
    ));
    r.register("a");
    r.register("b");
    assert_eq!(failovers(&r.effects), []);
    assert_eq!(
        failovers(&r.fail("a")),
        [("a".to_string(), "b".to_string())]
    );
}
