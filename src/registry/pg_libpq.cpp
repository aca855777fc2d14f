// Loading libpq (pg_libpq.hpp): in the static release build (FLEETKEY_LIBPQ_SONAME) with dlopen on
// first use, elsewhere the linked functions.

#include "registry/pg_libpq.hpp"

#include <fleetkey/core/error.hpp>

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <string_view>

namespace fleetkey::registry::pg {

#ifdef FLEETKEY_LIBPQ_SONAME
namespace {

template<typename F>
F symbol(void* lib, const char* name)
{
  void* p = ::dlsym(lib, name);
  if (p == nullptr) {
    throw Error(Exit::registry, "{} lacks {}", FLEETKEY_LIBPQ_SONAME, name);
  }
  return reinterpret_cast<F>(p);
}

} // namespace

const Libpq& libpq()
{
  static const Libpq api = [] {
    void* lib = ::dlopen(FLEETKEY_LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      throw Error(Exit::registry, "cannot load {} for a PostgreSQL registry (install the libpq5 package): {}",
                  FLEETKEY_LIBPQ_SONAME, ::dlerror());
    }
    const std::string_view loaded = symbol<const char* (*)()>(lib, "gnu_get_libc_version")();
    if (loaded != ::gnu_get_libc_version()) {
      throw Error(Exit::registry,
                  "cannot use {}: fleetkey was linked statically with glibc {} and this system has glibc {} "
                  "(rebuild fleetkey here)",
                  FLEETKEY_LIBPQ_SONAME, ::gnu_get_libc_version(), loaded);
    }
    Libpq q;
#define FLEETKEY_PQ(member, name) q.member = symbol<decltype(&name)>(lib, #name)
    FLEETKEY_PQ(connectdb_params, PQconnectdbParams);
    FLEETKEY_PQ(status, PQstatus);
    FLEETKEY_PQ(error_message, PQerrorMessage);
    FLEETKEY_PQ(finish, PQfinish);
    FLEETKEY_PQ(exec, PQexec);
    FLEETKEY_PQ(exec_params, PQexecParams);
    FLEETKEY_PQ(result_status, PQresultStatus);
    FLEETKEY_PQ(result_error_field, PQresultErrorField);
    FLEETKEY_PQ(result_error_message, PQresultErrorMessage);
    FLEETKEY_PQ(clear, PQclear);
    FLEETKEY_PQ(ntuples, PQntuples);
    FLEETKEY_PQ(getvalue, PQgetvalue);
    FLEETKEY_PQ(getlength, PQgetlength);
    FLEETKEY_PQ(getisnull, PQgetisnull);
    FLEETKEY_PQ(cmd_tuples, PQcmdTuples);
    FLEETKEY_PQ(put_copy_data, PQputCopyData);
    FLEETKEY_PQ(put_copy_end, PQputCopyEnd);
    FLEETKEY_PQ(get_result, PQgetResult);
    FLEETKEY_PQ(transaction_status, PQtransactionStatus);
    FLEETKEY_PQ(set_notice_processor, PQsetNoticeProcessor);
    FLEETKEY_PQ(conninfo_parse, PQconninfoParse);
    FLEETKEY_PQ(conninfo_free, PQconninfoFree);
    FLEETKEY_PQ(freemem, PQfreemem);
#undef FLEETKEY_PQ
    return q; // the library stays loaded until exit
  }();
  return api;
}
#else
const Libpq& libpq()
{
  static const Libpq api{&PQconnectdbParams,
                         &PQstatus,
                         &PQerrorMessage,
                         &PQfinish,
                         &PQexec,
                         &PQexecParams,
                         &PQresultStatus,
                         &PQresultErrorField,
                         &PQresultErrorMessage,
                         &PQclear,
                         &PQntuples,
                         &PQgetvalue,
                         &PQgetlength,
                         &PQgetisnull,
                         &PQcmdTuples,
                         &PQputCopyData,
                         &PQputCopyEnd,
                         &PQgetResult,
                         &PQtransactionStatus,
                         &PQsetNoticeProcessor,
                         &PQconninfoParse,
                         &PQconninfoFree,
                         &PQfreemem};
  return api;
}
#endif

} // namespace fleetkey::registry::pg
