//! The schema compiler's fixture output, compiled and used: generated Rust
//! is tested by the compiler, not only compared as text.

#[allow(dead_code, clippy::all)]
mod mini {
    include!("../../codegen/tests/data/fixture/minimal.rs");
}

use halyard_cluster_model::meta::{PhysicalClass, Role};
use halyard_cluster_model::{ManagedClass, SchemaEnum, Timestamp, Value};
use mini::{Box, Power, SCHEMA};

#[test]
fn generated_fixture_types_round_trip_through_values() {
    let b = Box {
        name: "box=1".into(),
        power: Power::Off,
        openings: 7,
        temperature: 21,
        fill: 0.25,
        opened_at: Some(Timestamp(1_000)),
        locked: true,
    };
    let values = b.to_values();
    assert_eq!(values[1], Value::Enum(2));
    assert_eq!(Box::from_values(&values), b);
    assert_eq!(Power::from_value(1), Some(Power::On));
    assert_eq!("off".parse::<Power>(), Ok(Power::Off));
    assert_eq!(Power::On.to_string(), "on");
    let meta = Box::META;
    assert_eq!(meta.attributes.len(), values.len());
    // Entity overridden, Fru and Role carried into the metadata.
    assert_eq!(meta.entity(), Some(PhysicalClass::Container));
    assert!(meta.is_fru);
    assert_eq!(mini::THING_META.entity(), Some(PhysicalClass::Other));
    assert!(!mini::THING_META.is_fru);
    let (i, power) = meta.attribute_by_role(Role::AdminState).unwrap();
    assert_eq!((i, power.name), (1, "Power"));
    assert!(meta.attribute_by_role(Role::SerialNum).is_none());
    assert_eq!(meta.attribute("Fill").unwrap().1.column, 13);
    assert_eq!(
        meta.attribute("Temperature")
            .unwrap()
            .1
            .metric
            .as_ref()
            .unwrap()
            .name,
        "mini_box_temperature_celsius"
    );
    assert_eq!(SCHEMA.module.root_oid(), [1, 3, 6, 1, 4, 1, 32473, 99]);
    assert!(SCHEMA.class("Opened").unwrap().is_indication);
    assert!(meta.method("Open").unwrap().job);
}
