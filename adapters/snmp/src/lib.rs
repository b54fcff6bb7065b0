//! The SNMP face: an SNMPv1/v2c/v3 agent over the information-model port.
