//! The schema's standard-meaning qualifiers (Entity, Fru, Role) as the
//! faces see them in `SCHEMA`.

use halyard_cluster_model::SCHEMA;
use halyard_cluster_model::meta::{PhysicalClass, Role};

/// The metadata's PhysicalClass and Role enumerations spell exactly the
/// values the schema compiler accepts, in the same order (PhysicalClass:
/// the SMIv2 values from 1).
#[test]
fn metadata_enums_match_the_compiler_lists() {
    let physical: Vec<&str> = PhysicalClass::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(physical, halyard_schema::ir::PHYSICAL_CLASSES);
    for (i, c) in PhysicalClass::ALL.iter().enumerate() {
        assert_eq!(c.value() as usize, i + 1, "{c:?}");
    }
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.label()).collect();
    let compiler: Vec<&str> = halyard_schema::ir::ROLES.iter().map(|(r, _)| *r).collect();
    assert_eq!(roles, compiler);
}

/// The physical entities and their classes, FRU flags and roles: what the
/// SNMP face's ENTITY-MIB mapping named by hand before the qualifiers.
#[test]
fn the_hardware_classes_carry_their_entity_mib_meaning() {
    let physical: Vec<(&str, PhysicalClass, bool)> = SCHEMA
        .classes
        .iter()
        .filter_map(|c| Some((c.name, c.entity()?, c.is_fru)))
        .collect();
    assert_eq!(
        physical,
        [
            ("NetworkElement", PhysicalClass::Stack, false),
            ("Shelf", PhysicalClass::Chassis, false),
            ("HardwareFru", PhysicalClass::Other, true),
            ("HotSwapController", PhysicalClass::Module, true),
            ("Fan", PhysicalClass::Fan, true),
            ("PowerSupply", PhysicalClass::PowerSupply, true),
            ("LineCard", PhysicalClass::Module, true),
            ("Port", PhysicalClass::Port, false),
            ("HostBoard", PhysicalClass::Module, true),
        ]
    );
    let role = |class: &str, role: Role| {
        SCHEMA
            .class(class)
            .unwrap()
            .attribute_by_role(role)
            .map(|(_, a)| a.name)
    };
    assert_eq!(role("Fan", Role::ParentRelPos), Some("Slot"));
    assert_eq!(role("Shelf", Role::ParentRelPos), Some("Position"));
    assert_eq!(role("Port", Role::ParentRelPos), Some("Position"));
    assert_eq!(role("Fan", Role::SerialNum), Some("SerialNumber"));
    assert_eq!(role("Fan", Role::HardwareRev), Some("HardwareRevision"));
    assert_eq!(role("Port", Role::SerialNum), None);
    assert_eq!(role("NetworkElement", Role::MfgName), Some("Vendor"));
    assert_eq!(role("NetworkElement", Role::ModelName), Some("Model"));
    assert_eq!(role("Fan", Role::ModelName), Some("ModelName"));
    assert_eq!(role("Shelf", Role::ModelName), Some("ModelName"));
    for class in ["Shelf", "Fan", "Port", "Node", "SoftwareComponent"] {
        assert_eq!(role(class, Role::Alias), Some("Label"));
        assert_eq!(role(class, Role::AdminState), Some("AdminState"));
        assert_eq!(role(class, Role::OperState), Some("OperState"));
        assert_eq!(role(class, Role::Availability), Some("AvailabilityState"));
        assert_eq!(role(class, Role::StateLastChanged), Some("LastChange"));
    }
    assert_eq!(role("ServiceGroup", Role::AdminState), Some("AdminState"));
}

/// The indications about an alarm are those carrying its name.
#[test]
fn alarm_indications_carry_the_alarm_role() {
    let by_role: Vec<&str> = SCHEMA
        .indications()
        .filter(|c| c.attribute_by_role(Role::Alarm).is_some())
        .map(|c| c.name)
        .collect();
    assert_eq!(by_role, ["AlarmRaised", "AlarmCleared"]);
    let by_name: Vec<&str> = SCHEMA
        .indications()
        .filter(|c| c.attribute("Alarm").is_some())
        .map(|c| c.name)
        .collect();
    assert_eq!(by_role, by_name);
}
