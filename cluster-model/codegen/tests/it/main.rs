//! Tests of the schema compiler: diagnostics, backends, freshness of the
//! shipped MIB and YANG, and the real validators (smilint, snmptranslate,
//! yanglint, pyang) on them.

mod expect;
mod schema;
mod tools;
