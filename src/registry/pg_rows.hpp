#pragma once
// Small helpers shared by the PostgreSQL backend's sources (pg_rows.cpp): text parameters, COPY's
// text format, and the readers of a row into the record types. Private to src/registry.

#include "registry/pg_conn.hpp"

#include <fleetkey/registry/records.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::registry::pg {

constexpr std::string_view k_device_columns =
    "id, model, labels, key_version, fingerprint, status, pairing_counter, created, revoked, revoke_reason";
constexpr std::string_view k_grant_columns =
    "\"user\", device, role, epoch, status, created, expires, revoked, revoke_reason";
constexpr std::string_view k_master_columns = "version, created, fingerprint, test_key, status, retired";
constexpr std::string_view k_chain_columns = "id, seq, hash, at, actor, action, subject, details";

// Row `i` of `r`, selected with the columns above in their order.
DeviceRecord read_device(const Result& r, int i);
GrantRecord read_grant(const Result& r, int i);
MasterKeyRecord read_master(const Result& r, int i);
AuditChainRow read_chain_row(const Result& r, int i);

// An integer as a text parameter.
std::string num(int64_t v);
// An optional text as a parameter: SQL NULL when absent.
Param opt(const std::optional<std::string>& s);
// Appends `v` to `out` in COPY's text format: backslash, tab, newline and carriage return escaped.
void copy_field(std::string& out, std::string_view v);

} // namespace fleetkey::registry::pg
