//! The command responder (RFC 3416): GET, GETNEXT, GETBULK and SET, under the deadline.

use std::future::Future;

use rasn_snmp::v2;

use super::response::{bulk_trimmed, response};
use super::{Access, Shared};
use crate::codec;
use crate::mib::Ctx;
use crate::oid::{self, Oid};
use crate::status::code;

/// A request PDU in SNMPv2 form.
#[derive(Debug)]
pub(super) enum Request {
    Get(v2::Pdu),
    GetNext(v2::Pdu),
    GetBulk(v2::BulkPdu),
    Set(v2::Pdu),
}

impl Request {
    pub(super) fn request_id(&self) -> i32 {
        match self {
            Request::Get(p) | Request::GetNext(p) | Request::Set(p) => p.request_id,
            Request::GetBulk(b) => b.request_id,
        }
    }

    pub(super) fn varbinds(&self) -> &[v2::VarBind] {
        match self {
            Request::Get(p) | Request::GetNext(p) | Request::Set(p) => &p.variable_bindings,
            Request::GetBulk(b) => &b.variable_bindings,
        }
    }
}

impl Shared {
    /// Runs one request under the per-request deadline. An answer ready
    /// on the first poll needs no timer.
    pub(super) async fn process(
        &self,
        request: Request,
        access: &Access<'_>,
        budget: usize,
    ) -> v2::Pdu {
        let mut inner = std::pin::pin!(self.process_inner(&request, access, budget));
        if let std::task::Poll::Ready(pdu) =
            std::future::poll_fn(|cx| std::task::Poll::Ready(inner.as_mut().poll(cx))).await
        {
            return pdu;
        }
        match tokio::time::timeout(self.config.request_timeout, inner).await {
            Ok(pdu) => pdu,
            Err(_) => {
                let id = request.request_id();
                tracing::warn!(request_id = id, "snmp request exceeded its deadline");
                response(id, code::GEN_ERR, 0, request.varbinds().to_vec())
            }
        }
    }

    async fn process_inner(
        &self,
        request: &Request,
        access: &Access<'_>,
        budget: usize,
    ) -> v2::Pdu {
        let mib = &self.mib;
        let mut ctx = match &request {
            // A GETBULK reads about max-repetitions rows of each table.
            Request::GetBulk(b) => Ctx::for_rows(b.max_repetitions as usize + 1),
            _ => Ctx::default(),
        };
        // The access rules' role: a user that may write is an operator
        // (an element's admin user, an admin).
        let role = if access.admin {
            halyard_cluster_model::access::Role::Admin
        } else if access.write_view.is_some() {
            halyard_cluster_model::access::Role::Operator
        } else {
            halyard_cluster_model::access::Role::Viewer
        };
        match mib.reader(access.user, role).await {
            Ok(r) => ctx.reader = r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the access rules");
                return response(
                    request.request_id(),
                    code::GEN_ERR,
                    0,
                    request.varbinds().to_vec(),
                );
            }
        }
        let id = request.request_id();
        match request {
            Request::Get(p) => {
                let mut out = Vec::with_capacity(p.variable_bindings.len());
                for (i, b) in p.variable_bindings.iter().enumerate() {
                    let name: &[u32] = &b.name;
                    let value = if access.read_view.contains(name) {
                        match mib.get(&mut ctx, name).await {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::debug!(error = %e, "model read failed");
                                return response(
                                    id,
                                    code::GEN_ERR,
                                    i as u32 + 1,
                                    p.variable_bindings.clone(),
                                );
                            }
                        }
                    } else {
                        v2::VarBindValue::NoSuchObject
                    };
                    out.push(v2::VarBind {
                        name: b.name.clone(),
                        value,
                    });
                }
                response(id, 0, 0, out)
            }
            Request::GetNext(p) => {
                let mut out = Vec::with_capacity(p.variable_bindings.len());
                for (i, b) in p.variable_bindings.iter().enumerate() {
                    match self.next_visible(&mut ctx, &b.name, access).await {
                        Ok(Some((o, v))) => out.push(v2::VarBind {
                            name: oid::into_asn(o),
                            value: v2::VarBindValue::Value(v),
                        }),
                        Ok(None) => out.push(v2::VarBind {
                            name: b.name.clone(),
                            value: v2::VarBindValue::EndOfMibView,
                        }),
                        Err(_) => {
                            return response(
                                id,
                                code::GEN_ERR,
                                i as u32 + 1,
                                p.variable_bindings.clone(),
                            );
                        }
                    }
                }
                response(id, 0, 0, out)
            }
            Request::GetBulk(b) => {
                let n = (b.non_repeaters as usize).min(b.variable_bindings.len());
                let mut out = Vec::new();
                let mut used = 0usize;
                let mut push = |out: &mut Vec<v2::VarBind>, v: v2::VarBind| -> bool {
                    let len = codec::varbind_len(&v.name, &v.value);
                    if used + len > budget {
                        return false;
                    }
                    used += len;
                    out.push(v);
                    true
                };
                for (i, x) in b.variable_bindings[..n].iter().enumerate() {
                    let v = match self.next_visible(&mut ctx, &x.name, access).await {
                        Ok(Some((o, v))) => v2::VarBind {
                            name: oid::into_asn(o),
                            value: v2::VarBindValue::Value(v),
                        },
                        Ok(None) => v2::VarBind {
                            name: x.name.clone(),
                            value: v2::VarBindValue::EndOfMibView,
                        },
                        Err(_) => {
                            return response(
                                id,
                                code::GEN_ERR,
                                i as u32 + 1,
                                b.variable_bindings.clone(),
                            );
                        }
                    };
                    if !push(&mut out, v) {
                        return bulk_trimmed(id, out);
                    }
                }
                // Each repeater continues from the name it answered last,
                // read from `out` (None: the request's own name); at the
                // end of the view it repeats that name.
                let mut cursors: Vec<(Option<usize>, bool)> =
                    vec![(None, false); b.variable_bindings.len() - n];
                let reps = b.max_repetitions.min(65_535);
                for _ in 0..reps {
                    if cursors.is_empty() || cursors.iter().all(|(_, end)| *end) {
                        break;
                    }
                    for (k, (cur, end)) in cursors.iter_mut().enumerate() {
                        let name = match cur {
                            Some(i) => &out[*i].name,
                            None => &b.variable_bindings[n + k].name,
                        };
                        let v = if *end {
                            v2::VarBind {
                                name: name.clone(),
                                value: v2::VarBindValue::EndOfMibView,
                            }
                        } else {
                            match self.next_visible(&mut ctx, name, access).await {
                                Ok(Some((o, v))) => v2::VarBind {
                                    name: oid::into_asn(o),
                                    value: v2::VarBindValue::Value(v),
                                },
                                Ok(None) => {
                                    *end = true;
                                    v2::VarBind {
                                        name: name.clone(),
                                        value: v2::VarBindValue::EndOfMibView,
                                    }
                                }
                                Err(_) => {
                                    return response(
                                        id,
                                        code::GEN_ERR,
                                        (n + k) as u32 + 1,
                                        b.variable_bindings.clone(),
                                    );
                                }
                            }
                        };
                        if !push(&mut out, v) {
                            return bulk_trimmed(id, out);
                        }
                        *cur = Some(out.len() - 1);
                    }
                }
                response(id, 0, 0, out)
            }
            Request::Set(p) => {
                let Some(view) = access.write_view else {
                    return response(id, code::NO_ACCESS, 1, p.variable_bindings.clone());
                };
                let vbs: Vec<(Oid, v2::VarBindValue)> = p
                    .variable_bindings
                    .iter()
                    .map(|b| (b.name.to_vec(), b.value.clone()))
                    .collect();
                match mib.set(&vbs, access.user, role, view).await {
                    Ok(()) => response(id, 0, 0, p.variable_bindings.clone()),
                    Err((status, index)) => {
                        response(id, status, index, p.variable_bindings.clone())
                    }
                }
            }
        }
    }

    /// GETNEXT within the read view (and without Counter64 for v1).
    async fn next_visible(
        &self,
        ctx: &mut Ctx,
        from: &[u32],
        access: &Access<'_>,
    ) -> Result<Option<(Oid, rasn_smi::v2::ObjectSyntax)>, halyard_cluster_model::port::ModelError>
    {
        let mut found = self.mib.next(ctx, from).await?;
        loop {
            match found {
                None => return Ok(None),
                Some((o, v)) => {
                    let v1_hidden = access.v1 && codec::v2_to_v1(&v).is_none();
                    if access.read_view.contains(&o) && !v1_hidden {
                        return Ok(Some((o, v)));
                    }
                    found = self.mib.next(ctx, &o).await?;
                }
            }
        }
    }
}
