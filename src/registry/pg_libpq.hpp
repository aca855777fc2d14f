#pragma once
// The libpq functions fleetkey calls, reached through libpq() (pg_libpq.cpp): linked, or loaded
// on first use by the static release build. Private to src/registry (pg_conn.cpp).

#include <libpq-fe.h>

namespace fleetkey::registry::pg {

// The libpq functions fleetkey calls. The static release build (FLEETKEY_LIBPQ_SONAME) loads
// libpq.so.5 when a PostgreSQL registry is first opened, as src/qr/qr.cpp loads libqrencode: Debian
// has no static Kerberos or LDAP for a static libpq, and SQLite users should not pay for libpq's
// start-up. The loaded libpq brings its own copy of the shared libc (checked to be the version
// fleetkey was linked with); everything libpq allocates is freed by libpq (PQclear, PQfinish,
// PQconninfoFree, PQfreemem).
struct Libpq
{
  decltype(&PQconnectdbParams) connectdb_params = nullptr;
  decltype(&PQstatus) status = nullptr;
  decltype(&PQerrorMessage) error_message = nullptr;
  decltype(&PQfinish) finish = nullptr;
  decltype(&PQexec) exec = nullptr;
  decltype(&PQexecParams) exec_params = nullptr;
  decltype(&PQresultStatus) result_status = nullptr;
  decltype(&PQresultErrorField) result_error_field = nullptr;
  decltype(&PQresultErrorMessage) result_error_message = nullptr;
  decltype(&PQclear) clear = nullptr;
  decltype(&PQntuples) ntuples = nullptr;
  decltype(&PQgetvalue) getvalue = nullptr;
  decltype(&PQgetlength) getlength = nullptr;
  decltype(&PQgetisnull) getisnull = nullptr;
  decltype(&PQcmdTuples) cmd_tuples = nullptr;
  decltype(&PQputCopyData) put_copy_data = nullptr;
  decltype(&PQputCopyEnd) put_copy_end = nullptr;
  decltype(&PQgetResult) get_result = nullptr;
  decltype(&PQtransactionStatus) transaction_status = nullptr;
  decltype(&PQsetNoticeProcessor) set_notice_processor = nullptr;
  decltype(&PQconninfoParse) conninfo_parse = nullptr;
  decltype(&PQconninfoFree) conninfo_free = nullptr;
  decltype(&PQfreemem) freemem = nullptr;
};

// The functions, loaded on the first call in the static release build (which throws an Error,
// exit 6, when libpq.so.5 is missing or unusable).
const Libpq& libpq();

} // namespace fleetkey::registry::pg
