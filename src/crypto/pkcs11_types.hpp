#pragma once
// The part of the PKCS#11 v2.40 interface (OASIS, "PKCS #11 Cryptographic Token Interface Base
// Specification Version 2.40", section 3 and the function list of pkcs11f.h) that fleetkey uses,
// written out here instead of adding a dependency: the types, the few structures and constants,
// and the function list in the order of the specification. On Linux every CK_ULONG is an
// unsigned long and structures have the platform's natural packing.

#include <cstdint>

namespace fleetkey::crypto::pkcs11::ck {

using ULONG = unsigned long; // NOLINT: the specification's CK_ULONG
using BYTE = unsigned char;
using BBOOL = unsigned char;
using RV = ULONG;
using FLAGS = ULONG;
using SLOT_ID = ULONG;
using SESSION_HANDLE = ULONG;
using OBJECT_HANDLE = ULONG;
using USER_TYPE = ULONG;
using MECHANISM_TYPE = ULONG;
using ATTRIBUTE_TYPE = ULONG;
using OBJECT_CLASS = ULONG;
using KEY_TYPE = ULONG;

constexpr BBOOL k_true = 1;
constexpr BBOOL k_false = 0;

struct VERSION
{
  BYTE major;
  BYTE minor;
};

struct TOKEN_INFO
{
  BYTE label[32];
  BYTE manufacturer_id[32];
  BYTE model[16];
  BYTE serial_number[16];
  FLAGS flags;
  ULONG max_session_count;
  ULONG session_count;
  ULONG max_rw_session_count;
  ULONG rw_session_count;
  ULONG max_pin_len;
  ULONG min_pin_len;
  ULONG total_public_memory;
  ULONG free_public_memory;
  ULONG total_private_memory;
  ULONG free_private_memory;
  VERSION hardware_version;
  VERSION firmware_version;
  BYTE utc_time[16];
};

struct ATTRIBUTE
{
  ATTRIBUTE_TYPE type;
  void* value;
  ULONG value_len;
};

struct MECHANISM
{
  MECHANISM_TYPE mechanism;
  void* parameter;
  ULONG parameter_len;
};

using CreateMutex = RV (*)(void** mutex);
using DestroyMutex = RV (*)(void* mutex);
using LockMutex = RV (*)(void* mutex);
using UnlockMutex = RV (*)(void* mutex);

struct C_INITIALIZE_ARGS
{
  CreateMutex create_mutex;
  DestroyMutex destroy_mutex;
  LockMutex lock_mutex;
  UnlockMutex unlock_mutex;
  FLAGS flags;
  void* reserved;
};

// Return values.
constexpr RV CKR_OK = 0x0;
constexpr RV CKR_CANT_LOCK = 0xa;
constexpr RV CKR_PIN_INCORRECT = 0xa0;
constexpr RV CKR_PIN_INVALID = 0xa1;
constexpr RV CKR_PIN_LEN_RANGE = 0xa2;
constexpr RV CKR_PIN_EXPIRED = 0xa3;
constexpr RV CKR_PIN_LOCKED = 0xa4;
constexpr RV CKR_TOKEN_NOT_PRESENT = 0xe0;
constexpr RV CKR_USER_ALREADY_LOGGED_IN = 0x100;
constexpr RV CKR_USER_NOT_LOGGED_IN = 0x101;
constexpr RV CKR_USER_PIN_NOT_INITIALIZED = 0x102;
constexpr RV CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

// Flags: C_Initialize's, a slot's, a token's, a session's.
constexpr FLAGS CKF_OS_LOCKING_OK = 0x2;
constexpr FLAGS CKF_TOKEN_PRESENT = 0x1;
constexpr FLAGS CKF_LOGIN_REQUIRED = 0x4;
constexpr FLAGS CKF_TOKEN_INITIALIZED = 0x400;
constexpr FLAGS CKF_RW_SESSION = 0x2;
constexpr FLAGS CKF_SERIAL_SESSION = 0x4;

constexpr USER_TYPE CKU_USER = 1;
constexpr OBJECT_CLASS CKO_SECRET_KEY = 4;
constexpr KEY_TYPE CKK_GENERIC_SECRET = 0x10;
constexpr MECHANISM_TYPE CKM_SHA256_HMAC = 0x251;

// Attributes.
constexpr ATTRIBUTE_TYPE CKA_CLASS = 0x0;
constexpr ATTRIBUTE_TYPE CKA_TOKEN = 0x1;
constexpr ATTRIBUTE_TYPE CKA_PRIVATE = 0x2;
constexpr ATTRIBUTE_TYPE CKA_LABEL = 0x3;
constexpr ATTRIBUTE_TYPE CKA_VALUE = 0x11;
constexpr ATTRIBUTE_TYPE CKA_KEY_TYPE = 0x100;
constexpr ATTRIBUTE_TYPE CKA_SENSITIVE = 0x103;
constexpr ATTRIBUTE_TYPE CKA_ENCRYPT = 0x104;
constexpr ATTRIBUTE_TYPE CKA_DECRYPT = 0x105;
constexpr ATTRIBUTE_TYPE CKA_WRAP = 0x106;
constexpr ATTRIBUTE_TYPE CKA_UNWRAP = 0x107;
constexpr ATTRIBUTE_TYPE CKA_SIGN = 0x108;
constexpr ATTRIBUTE_TYPE CKA_VERIFY = 0x10a;
constexpr ATTRIBUTE_TYPE CKA_DERIVE = 0x10c;
constexpr ATTRIBUTE_TYPE CKA_EXTRACTABLE = 0x162;

using Unused = void (*)();

// CK_FUNCTION_LIST, in the specification's order; the entries fleetkey never calls are left untyped.
struct FUNCTION_LIST
{
  VERSION version;
  RV (*C_Initialize)(void* init_args);
  RV (*C_Finalize)(void* reserved);
  Unused C_GetInfo;
  Unused C_GetFunctionList;
  RV (*C_GetSlotList)(BBOOL token_present, SLOT_ID* slots, ULONG* count);
  Unused C_GetSlotInfo;
  RV (*C_GetTokenInfo)(SLOT_ID slot, TOKEN_INFO* info);
  Unused C_GetMechanismList;
  Unused C_GetMechanismInfo;
  Unused C_InitToken;
  Unused C_InitPIN;
  Unused C_SetPIN;
  RV (*C_OpenSession)(SLOT_ID slot, FLAGS flags, void* application, void* notify, SESSION_HANDLE* session);
  RV (*C_CloseSession)(SESSION_HANDLE session);
  Unused C_CloseAllSessions;
  Unused C_GetSessionInfo;
  Unused C_GetOperationState;
  Unused C_SetOperationState;
  RV (*C_Login)(SESSION_HANDLE session, USER_TYPE user, BYTE* pin, ULONG pin_len);
  Unused C_Logout;
  RV (*C_CreateObject)(SESSION_HANDLE session, ATTRIBUTE* templ, ULONG count, OBJECT_HANDLE* object);
  Unused C_CopyObject;
  RV (*C_DestroyObject)(SESSION_HANDLE session, OBJECT_HANDLE object);
  Unused C_GetObjectSize;
  Unused C_GetAttributeValue;
  Unused C_SetAttributeValue;
  RV (*C_FindObjectsInit)(SESSION_HANDLE session, ATTRIBUTE* templ, ULONG count);
  RV (*C_FindObjects)(SESSION_HANDLE session, OBJECT_HANDLE* objects, ULONG max_count, ULONG* count);
  RV (*C_FindObjectsFinal)(SESSION_HANDLE session);
  Unused C_EncryptInit;
  Unused C_Encrypt;
  Unused C_EncryptUpdate;
  Unused C_EncryptFinal;
  Unused C_DecryptInit;
  Unused C_Decrypt;
  Unused C_DecryptUpdate;
  Unused C_DecryptFinal;
  Unused C_DigestInit;
  Unused C_Digest;
  Unused C_DigestUpdate;
  Unused C_DigestKey;
  Unused C_DigestFinal;
  RV (*C_SignInit)(SESSION_HANDLE session, MECHANISM* mechanism, OBJECT_HANDLE key);
  RV (*C_Sign)(SESSION_HANDLE session, BYTE* data, ULONG data_len, BYTE* signature, ULONG* signature_len);
  Unused C_SignUpdate;
  Unused C_SignFinal;
  Unused C_SignRecoverInit;
  Unused C_SignRecover;
  Unused C_VerifyInit;
  Unused C_Verify;
  Unused C_VerifyUpdate;
  Unused C_VerifyFinal;
  Unused C_VerifyRecoverInit;
  Unused C_VerifyRecover;
  Unused C_DigestEncryptUpdate;
  Unused C_DecryptDigestUpdate;
  Unused C_SignEncryptUpdate;
  Unused C_DecryptVerifyUpdate;
  Unused C_GenerateKey;
  Unused C_GenerateKeyPair;
  Unused C_WrapKey;
  Unused C_UnwrapKey;
  Unused C_DeriveKey;
  Unused C_SeedRandom;
  Unused C_GenerateRandom;
  Unused C_GetFunctionStatus;
  Unused C_CancelFunction;
  Unused C_WaitForSlotEvent;
};

using GetFunctionList = RV (*)(FUNCTION_LIST** list);

} // namespace fleetkey::crypto::pkcs11::ck
