//! Feeds arbitrary datagrams through the agent's whole receive path
//! (version peek, BER decoding, community/USM checks, PDU processing over
//! the demo element, response encoding). Any panic is a finding.
#![no_main]

use std::sync::{Arc, OnceLock};

use halyard_cluster_model::memory::demo_element;
use halyard_snmp::{
    AuthProtocol, Community, Group, PrivProtocol, SecurityLevel, SnmpAgent, SnmpConfig, UsmUser,
    View,
};
use libfuzzer_sys::fuzz_target;

struct Harness {
    rt: tokio::runtime::Runtime,
    agent: SnmpAgent,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let config = SnmpConfig {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            communities: vec![Community {
                name: "public".into(),
                view: View::all(),
                write: true,
            }],
            groups: vec![Group {
                name: "g".into(),
                read_view: Some("all".into()),
                write_view: Some("all".into()),
                min_level: SecurityLevel::AuthPriv,
                write_min_level: SecurityLevel::AuthPriv,
            }],
            users: vec![UsmUser {
                name: "admin".into(),
                auth: Some((AuthProtocol::Sha256, "authpass-2026".into())),
                privacy: Some((PrivProtocol::Aes128, "privpass-2026".into())),
                group: "g".into(),
            }],
            // A fixed engine ID so that seeds stay meaningful.
            engine_id: Some(vec![0x80, 0x00, 0x7e, 0xd9, 0x05, 1, 2, 3, 4]),
            ..SnmpConfig::default()
        };
        let agent = rt
            .block_on(SnmpAgent::bind(config, Arc::new(demo_element())))
            .expect("bind");
        Harness { rt, agent }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let _ = h.rt.block_on(h.agent.handle_datagram(data));
});
