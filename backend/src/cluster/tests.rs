//! The wire forms round-trip, subtrees overlap on whole names, snapshots
//! keep what they must, and the cluster clock keeps differences.

use halyard_cluster_model::model::{AdminState, AvailabilityState};

use super::*;
use crate::crim::Input;

#[test]
fn inputs_cross_the_wire_unchanged() {
    let inputs = [
        Input::Registered {
            component: "c".into(),
            incarnation: 3,
        },
        Input::Acked {
            component: "c".into(),
            state: AvailabilityState::Secondary,
        },
        Input::SetAdmin {
            component: "c".into(),
            admin: AdminState::Locked,
        },
        Input::Lost {
            component: "c".into(),
            reason: "node n1 lost".into(),
        },
    ];
    for i in inputs {
        let cmd = Command::Crim {
            input: WireInput::from(&i),
            at_ms: 5,
        };
        let json = serde_json::to_value(&cmd).unwrap();
        let back: Command = serde_json::from_value(json).unwrap();
        let Command::Crim { input, .. } = back else {
            panic!("not a CRIM command")
        };
        assert_eq!(Input::try_from(input).unwrap(), i);
    }
    let bad = WireInput::Acked {
        component: "c".into(),
        state: "sideways".into(),
    };
    assert!(Input::try_from(bad).is_err());
}

#[test]
fn subtrees_overlap_on_whole_names_only() {
    assert!(overlaps("ne=1/shelf=1", "ne=1/shelf=1/fan=2"));
    assert!(overlaps("ne=1/shelf=1/fan=2", "ne=1/shelf=1"));
    assert!(overlaps("ne=1/shelf=1", "ne=1/shelf=1"));
    assert!(!overlaps("ne=1/shelf=1", "ne=1/shelf=10"));
    assert!(!overlaps("ne=1/shelf=1/fan=1", "ne=1/shelf=1/fan=2"));
}

#[test]
fn snapshots_keep_the_latest_write_only_where_state_is_overwritten() {
    let keep = |c: Command| retention(&serde_json::to_value(c).unwrap());
    let w = |v: &str| Command::Checkpoint {
        si: "si=1".into(),
        writer: "a".into(),
        key: "count".into(),
        value: v.into(),
    };
    assert_eq!(keep(w("1")), keep(w("2")));
    assert!(matches!(keep(w("1")), Retention::Latest(_)));
    // A fence is overwritten by the next fence of its instance only.
    let fence = |si: &str, owner: &str| {
        keep(Command::CheckpointFence {
            si: si.into(),
            owner: owner.into(),
        })
    };
    assert_eq!(fence("si=1", "a"), fence("si=1", "b"));
    assert_ne!(fence("si=1", "a"), fence("si=2", "a"));
    assert_ne!(fence("si=1", "a"), keep(w("1")));
    // A write logged before fences existed has no writer, and is admitted.
    let old = serde_json::json!({"cmd": "checkpoint", "si": "si=1", "key": "count", "value": "7"});
    let Command::Checkpoint { writer, .. } = serde_json::from_value(old).unwrap() else {
        panic!("not a checkpoint write")
    };
    assert_eq!(writer, "");
    let lock = keep(Command::Lock {
        subject: "ne=1/shelf=1".into(),
        holder: "job 1 on node n1".into(),
    });
    assert_eq!(lock, Retention::Keep);
    assert_eq!(keep(Command::NodeUp { node: "n1".into() }), Retention::Keep);
    // A replicated change carries its proposer's rule across the wire.
    let bounded = Retention::Recent {
        class: "audit".into(),
        keep: 1000,
    };
    let change = Command::Replicated(crate::replicated::Change {
        topic: "audit".into(),
        retention: bounded.clone(),
        body: serde_json::json!({}),
        expect: None,
    });
    assert_eq!(keep(change), bounded);
    // A command logged before changes carried a rule is kept.
    let old = serde_json::json!({"cmd": "replicated", "topic": "set", "body": []});
    assert_eq!(retention(&old), Retention::Keep);
    let Command::Replicated(c) = serde_json::from_value(old).unwrap() else {
        panic!("not a replicated change")
    };
    assert_eq!(c.retention, Retention::Keep);
}

#[test]
fn a_hot_swap_change_crosses_the_wire_unchanged() {
    use halyard_cluster_model::model::{
        CheckpointMode, RecoveryAction, RedundancyModel, StandbyMode,
    };
    let change = crate::core::spec::Reconfigure {
        crim: crate::crim::Reconfig {
            add_groups: vec![crate::crim::SgConfig {
                name: "ne=1/sg=fru-1-3".into(),
                model: RedundancyModel::NoRedundancy,
                standby: StandbyMode::Warm,
                preferred_secondaries: 0,
                first_recovery: RecoveryAction::SoftReset,
                max_restarts: 3,
                probation: Duration::from_secs(60),
                members: vec!["ne=1/shelf=1/linecard=slot-3".into()],
                sis: vec!["ne=1/sg=fru-1-3/si=1".into()],
            }],
            join: vec![crate::crim::GroupMember {
                group: "ne=1/sg=ports".into(),
                component: "ne=1/shelf=1/linecard=slot-3/comp=portd".into(),
                sis: vec![],
            }],
            leave: vec![],
            remove_groups: vec!["ne=1/sg=fru-1-4".into()],
            locked: vec!["ne=1/shelf=1/linecard=slot-3/comp=portd".into()],
        },
        components: vec![crate::core::spec::ComponentSpec {
            name: "ne=1/shelf=1/linecard=slot-3/comp=portd".into(),
            parent: Some("ne=1/shelf=1/linecard=slot-3".into()),
            kind: crate::core::spec::Kind::Process {
                start: vec!["sleep".into(), "60".into()],
                stop: None,
                health: Some(vec!["true".into()]),
                role: None,
                env: vec![("A".into(), "b".into())],
            },
            checkpoint: CheckpointMode::NoCheckpoints,
            audit: Some((Duration::from_millis(500), Duration::from_millis(200))),
        }],
        lost: vec!["ne=1/shelf=1/fan=1".into()],
        restart: vec![],
        note: serde_json::json!({"inserted": true}),
    };
    let cmd = Command::Reconfigure(Box::new(WireReconfigure::from(&change)));
    let json = serde_json::to_value(&cmd).unwrap();
    assert_eq!(json["cmd"], "reconfigure");
    assert_eq!(retention(&json), Retention::Keep, "a hot swap is history");
    let Command::Reconfigure(back) = serde_json::from_value(json).unwrap() else {
        panic!("not a reconfiguration")
    };
    assert_eq!(
        crate::core::spec::Reconfigure::try_from(*back).unwrap(),
        change
    );
}

#[test]
fn the_clock_keeps_differences() {
    let c = ClusterClock::new();
    let a = c.instant(c.base_ms + 1000);
    let b = c.instant(c.base_ms + 4000);
    assert_eq!(b - a, Duration::from_secs(3));
}
