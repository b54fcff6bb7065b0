//! The SNMP and NETCONF faces' own counters on `/metrics`, read at each
//! scrape from the faces' statistics (no copy kept in the agent).

use std::sync::Arc;

use halyard_cluster_model::latency::LatencyHistogram;
use halyard_cluster_model::layer::{Call, CallStats};
use halyard_netconf::Stats;
use halyard_snmp::engine::{Counter as C, Engine};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// SNMP engine counters, labelled as the SNMPv2-MIB / USM objects they are.
const SNMP: &[(C, &str)] = &[
    (C::InPkts, "in_pkts"),
    (C::OutPkts, "out_pkts"),
    (C::InBadVersions, "in_bad_versions"),
    (C::InBadCommunityNames, "in_bad_community_names"),
    (C::InBadCommunityUses, "in_bad_community_uses"),
    (C::InAsnParseErrs, "in_asn_parse_errs"),
    (C::SilentDrops, "silent_drops"),
    (C::UnknownUserNames, "usm_unknown_user_names"),
    (C::WrongDigests, "usm_wrong_digests"),
    (C::NotInTimeWindows, "usm_not_in_time_windows"),
    (C::DecryptionErrors, "usm_decryption_errors"),
    (C::TrapsSent, "traps_sent"),
    (C::InformsSent, "informs_sent"),
    (C::InformsAcked, "informs_acked"),
    (C::InformsTimedOut, "informs_timed_out"),
];

/// A face's latency histogram, encoded from its lock-free snapshot.
struct Latency<'a>(&'a LatencyHistogram);

impl EncodeMetric for Latency<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, cumulative) = self.0.snapshot();
        // The encoder takes per-bucket counts and accumulates them itself.
        let mut buckets = Vec::with_capacity(cumulative.len() + 1);
        let mut prev = 0;
        for (bound, c) in cumulative {
            buckets.push((bound, c - prev));
            prev = c;
        }
        buckets.push((f64::INFINITY, count - prev));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Debug, Default)]
pub struct FaceMetrics {
    pub snmp: Option<Arc<Engine>>,
    pub netconf: Option<Arc<Stats>>,
    /// Each face's calls of the model (the layer every face is given).
    pub calls: Vec<(&'static str, Arc<CallStats>)>,
}

impl Collector for FaceMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(e) = &self.snmp {
            let mut me = encoder.encode_descriptor(
                "halyard_snmp_messages",
                "SNMP messages and notifications, by SNMPv2-MIB / SNMP-USER-BASED-SM-MIB counter",
                None,
                MetricType::Counter,
            )?;
            for (c, name) in SNMP {
                ConstCounter::new(u64::from(e.get(*c)))
                    .encode(me.encode_family(&[("counter", *name)])?)?;
            }
            let me = encoder.encode_descriptor(
                "halyard_snmp_request_duration_seconds",
                "Time from an SNMP request's arrival to its response being sent",
                None,
                MetricType::Histogram,
            )?;
            Latency(&e.latency).encode(me)?;
        }
        if let Some(s) = &self.netconf {
            let get = |c: &std::sync::atomic::AtomicU64| Stats::get(c);
            let mut me = encoder.encode_descriptor(
                "halyard_netconf_events",
                "NETCONF sessions, RPCs, errors and notifications, by ietf-netconf-monitoring statistic",
                None,
                MetricType::Counter,
            )?;
            for (name, v) in [
                ("in_sessions", get(&s.in_sessions)),
                ("dropped_sessions", get(&s.dropped_sessions)),
                ("in_bad_hellos", get(&s.in_bad_hellos)),
                ("in_rpcs", get(&s.in_rpcs)),
                ("in_bad_rpcs", get(&s.in_bad_rpcs)),
                ("out_rpc_errors", get(&s.out_rpc_errors)),
                ("out_notifications", get(&s.out_notifications)),
                ("auth_failures", get(&s.auth_failures)),
                ("auth_refused", get(&s.auth_refused)),
                ("access_denied", get(&s.access_denied)),
                ("denied_notifications", get(&s.denied_notifications)),
                ("framing_errors", get(&s.framing_errors)),
                ("ssh_errors", get(&s.ssh_errors)),
                // Characters XML 1.0 forbids, replaced in what it sent.
                (
                    "xml_replaced_characters",
                    halyard_netconf::xml::replaced_chars(),
                ),
            ] {
                ConstCounter::new(v).encode(me.encode_family(&[("counter", name)])?)?;
            }
            let me = encoder.encode_descriptor(
                "halyard_netconf_rpc_duration_seconds",
                "Time to handle one NETCONF RPC, from the whole message to the reply",
                None,
                MetricType::Histogram,
            )?;
            Latency(&s.rpc_latency).encode(me)?;
        }
        let denials = halyard_cluster_model::access::Denials::global().snapshot();
        if !denials.is_empty() {
            let mut me = encoder.encode_descriptor(
                "halyard_access_denials",
                "Requests the access rules refused, by face, user and the rule that refused them",
                None,
                MetricType::Counter,
            )?;
            for (face, user, rule, n) in &denials {
                ConstCounter::new(*n).encode(me.encode_family(&[
                    ("face", *face),
                    ("user", user.as_str()),
                    ("rule", rule.as_str()),
                ])?)?;
            }
        }
        if !self.calls.is_empty() {
            let mut me = encoder.encode_descriptor(
                "halyard_model_call_duration_seconds",
                "Time a face waited for one call of the information model, by face and call",
                None,
                MetricType::Histogram,
            )?;
            for (face, stats) in &self.calls {
                // A series appears with its first call, as client
                // libraries' labelled histograms do: nine calls by three
                // faces would be 400 lines of zeros.
                for call in Call::ALL
                    .into_iter()
                    .filter(|c| stats.latency(*c).snapshot().1 > 0)
                {
                    Latency(stats.latency(call))
                        .encode(me.encode_family(&[("face", *face), ("call", call.name())])?)?;
                }
            }
            let mut me = encoder.encode_descriptor(
                "halyard_model_read_timeouts",
                "Reads of the information model a face abandoned at their deadline",
                None,
                MetricType::Counter,
            )?;
            for (face, stats) in &self.calls {
                ConstCounter::new(stats.timeouts())
                    .encode(me.encode_family(&[("face", *face)])?)?;
            }
        }
        Ok(())
    }
}
