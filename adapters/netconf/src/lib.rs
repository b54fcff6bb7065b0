//! The NETCONF face: an RFC 6241/6242 server over SSH on the information-model port.
