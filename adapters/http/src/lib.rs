//! The HTTP face: XML/JSON API, the operator web console and Prometheus metrics over the information-model port.
