"""GET sysName.0 as each SNMPv3 user given, with pysnmp (LeXtudio 7.1).

argv: host port users-json, where each user is
{"name", "auth", "auth_pass", "priv"?, "priv_pass"?} with net-snmp's
protocol names; "AES-192-C"/"AES-256-C" are the Reeder key extension
(pysnmp's usmAesCfb192Protocol), "AES-192"/"AES-256" Blumenthal's.
Prints one JSON line per user: {"user", "error", "value"}.
"""
import asyncio
import json
import sys

from pysnmp.hlapi.v3arch.asyncio import (
    ContextData, ObjectIdentity, ObjectType, SnmpEngine, UdpTransportTarget,
    UsmUserData, get_cmd, usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol, usmAesCfb128Protocol,
    usmAesCfb192Protocol, usmAesCfb256Protocol, usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol, usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol, usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol, usmHMACSHAAuthProtocol, usmNoPrivProtocol)

AUTH = {
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA-224": usmHMAC128SHA224AuthProtocol,
    "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol,
    "SHA-512": usmHMAC384SHA512AuthProtocol,
}
PRIV = {
    "DES": usmDESPrivProtocol,
    "AES": usmAesCfb128Protocol,
    "AES-192": usmAesBlumenthalCfb192Protocol,
    "AES-256": usmAesBlumenthalCfb256Protocol,
    "AES-192-C": usmAesCfb192Protocol,
    "AES-256-C": usmAesCfb256Protocol,
}


async def main():
    host, port, users = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    engine = SnmpEngine()
    for u in users:
        priv = u.get("priv")
        data = UsmUserData(
            u["name"], u["auth_pass"], u.get("priv_pass"),
            authProtocol=AUTH[u["auth"]],
            privProtocol=PRIV[priv] if priv else usmNoPrivProtocol)
        target = await UdpTransportTarget.create((host, port), timeout=3, retries=1)
        err, status, _, binds = await get_cmd(
            engine, data, target, ContextData(),
            ObjectType(ObjectIdentity("1.3.6.1.2.1.1.5.0")))
        error = str(err) if err else (status.prettyPrint() if status else None)
        value = str(binds[0][1]) if binds and not error else None
        print(json.dumps({"user": u["name"], "error": error, "value": value}), flush=True)
    engine.close_dispatcher()


asyncio.run(main())
