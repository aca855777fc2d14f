/* fleetkey_device.h: the device side of fleetkey, in portable C99 (fleetkey-device(7)).
 *
 * A lock stores its key K_dev(D), its id D and its master key version, and with them checks the
 * tokens and state documents fleetkey issues for it, runs a proof-of-possession handshake with a
 * phone and an encrypted, replay-proof channel. The phone side of the handshake and the channel
 * is the same code. No heap, no global mutable state, no libc beyond memcpy and memset: every
 * context is allocated by the caller, every buffer is a pointer and a length, and the platform
 * (time, persistent storage, randomness) is reached through struct fk_platform. */
#ifndef FLEETKEY_DEVICE_H
#define FLEETKEY_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One status for every function. The first eight are token verify's reasons, with its names;
 * stale and replayed are the state document's; the last three are the caller's or platform's. */
typedef enum {
  FK_OK = 0,
  FK_MALFORMED,        /* does not decode strictly (token verify exit 10) */
  FK_BAD_MAC,          /* tag mismatch or wrong tag length (11) */
  FK_EXPIRED,          /* now >= exp + leeway (12) */
  FK_NOT_YET_VALID,    /* now + leeway < nbf (13) */
  FK_REVOKED,          /* by the state document (14) */
  FK_UNKNOWN_KEY,      /* kid not this lock's vN/D, or a retired version (15) */
  FK_WRONG_AUDIENCE,   /* aud is not this lock (16) */
  FK_STALE,            /* no state document, or it has expired: fail closed */
  FK_REPLAYED,         /* state document not newer; handshake or frame already seen */
  FK_FORBIDDEN,        /* valid token without one of the scopes the caller requires */
  FK_INVALID_ARGUMENT, /* a buffer too small, a call out of order, a bad parameter */
  FK_PLATFORM_ERROR    /* a platform callback failed (storage, clock, randomness) */
} fk_status;

/* "ok", "malformed", ... "platform_error": the names token verify --json prints as reason. */
const char* fk_status_name(fk_status s);

/* ---- Platform hooks ---------------------------------------------------------------------- */

#define FK_PERSIST_SIZE 28 /* "FKD" 01 | seq u64be | iat u64be | hwm u64be */

typedef struct fk_platform
{
  void* ctx;
  /* Current Unix time in seconds; return 0 on success. */
  int (*now)(void* ctx, uint64_t* unix_seconds);
  /* Read the FK_PERSIST_SIZE bytes stored by store(). Return 0 on success, 1 when nothing was
   * ever stored (a new lock), anything else on failure. */
  int (*load)(void* ctx, uint8_t* buf, size_t len);
  /* Store the bytes durably before returning 0 (the anti-rollback state). */
  int (*store)(void* ctx, const uint8_t* buf, size_t len);
  /* Fill buf with cryptographically secure random bytes; return 0 on success. */
  int (*random)(void* ctx, uint8_t* buf, size_t len);
} fk_platform;

/* ---- SHA-256, HMAC, HKDF (RFC 6234, 2104, 5869) ----------------------------------------------
 * The portable code is used unless FK_SHA256_HOOK is defined at build time: then the platform
 * provides fk_sha256_init/update/final over its own struct fk_sha256 (mbedTLS, PSA, hardware). */
#ifndef FK_SHA256_HOOK
typedef struct fk_sha256
{
  uint32_t h[8];
  uint64_t bytes;
  uint8_t buf[64];
} fk_sha256;
#else
#include FK_SHA256_HOOK
#endif
void fk_sha256_init(fk_sha256* c);
void fk_sha256_update(fk_sha256* c, const uint8_t* p, size_t n);
void fk_sha256_final(fk_sha256* c, uint8_t out[32]);

typedef struct fk_hmac
{
  fk_sha256 sha;   /* the inner hash, then the outer one */
  uint8_t key[64]; /* the key block, for the outer hash */
} fk_hmac;
void fk_hmac_init(fk_hmac* c, const uint8_t* key, size_t key_len);
void fk_hmac_update(fk_hmac* c, const uint8_t* p, size_t n);
void fk_hmac_final(fk_hmac* c, uint8_t out[32]);
void fk_hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* p, size_t n, uint8_t out[32]);
/* fleetkey's info field: u16be(len) || bytes (fleetkey-formats(5) INFO ENCODING). */
void fk_hmac_field(fk_hmac* c, const uint8_t* p, size_t n);
void fk_hmac_field_u64(fk_hmac* c, uint64_t v);

void fk_hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len, uint8_t prk[32]);
/* out_len <= 255 * 32. */
fk_status fk_hkdf_expand(const uint8_t prk[32], const uint8_t* info, size_t info_len, uint8_t* out, size_t out_len);

/* Constant-time equality of two n-byte strings: 1 when equal. */
int fk_equal(const uint8_t* a, const uint8_t* b, size_t n);
/* Overwrites n bytes with zeros in a way the compiler cannot drop. */
void fk_wipe(void* p, size_t n);

/* ---- Keys a device recomputes from K_dev (fleetkey-formats(5), fleetkey-pairing(5)) -------- */

typedef struct fk_device
{
  uint8_t prk_dev[32]; /* PRK_dev(D) = HKDF-Extract("fleetkey/v1", K_dev(D)) */
  uint8_t id[128];     /* D, 1 to 128 bytes */
  uint8_t id_len;
  uint32_t key_version; /* the master key version D was registered with */
} fk_device;

/* Loads K_dev(D); the key itself is not kept, only PRK_dev. */
fk_status fk_device_init(fk_device* d, const uint8_t k_dev[32], const char* id, size_t id_len, uint32_t key_version);
fk_status fk_user_key(const fk_device* d, const char* user, size_t user_len, uint64_t epoch, uint8_t out[32]);
fk_status fk_purpose_key(const fk_device* d, const char* purpose, size_t purpose_len, uint8_t out[32]);
/* The pairing code for counter n: digits (6-12) PIN digits and their Verhoeff check digit, as
 * ASCII in code[0..digits], NUL-terminated (code must hold digits + 2 bytes). */
fk_status fk_pairing_code(const fk_device* d, uint64_t counter, unsigned digits, char* code, size_t code_len);
/* The Matter setup passcode and discriminator derived for counter n. */
fk_status fk_matter_passcode(const fk_device* d, uint64_t counter, uint32_t* passcode, uint16_t* discriminator);

/* ---- Tokens (fleetkey-tokens(5)): cwt and cwt64, raw CBOR bytes ------------------------------ */

typedef struct fk_str
{
  const uint8_t* p; /* points into the token buffer; not NUL-terminated */
  size_t len;
} fk_str;

typedef struct fk_token
{
  fk_str kid, sub, aud, scope, cti, iss;
  int64_t exp, nbf, iat;
  uint64_t epoch;
  uint8_t has_exp, has_nbf, has_iat, has_epoch;
  uint8_t alg;   /* 5 (cwt) or 4 (cwt64) */
  fk_str tag;    /* 32 or 8 bytes by alg; another length is bad_mac, not malformed */
  fk_str claims; /* the claims bstr's content, for the MAC */
  fk_str protected_hdr;
} fk_token;

/* Strict decoding of exactly the profile fleetkey emits: steps 1 to 3 of VERIFICATION. */
fk_status fk_token_decode(const uint8_t* buf, size_t len, fk_token* t);
/* base64url without padding to bytes (the token text); *out_len is the capacity, then the size. */
fk_status fk_base64url_decode(const char* in, size_t in_len, uint8_t* out, size_t* out_len);

/* ---- The state document (fleetkey-state(5)) ------------------------------------------------ */

typedef struct fk_state_doc
{
  fk_str kid, aud;
  uint64_t seq, iat, exp, status, pairing;
  fk_str epochs; /* the map's entries: (bstr(8) uid, uint) pairs, encoded */
  size_t n_epochs;
  fk_str revoked; /* the array's items: bstr ids, encoded */
  size_t n_revoked;
  fk_str retired; /* the array's items: uints, encoded */
  size_t n_retired;
  fk_str tag, payload, protected_hdr;
} fk_state_doc;

fk_status fk_state_decode(const uint8_t* buf, size_t len, fk_state_doc* s);

/* ---- The lock ------------------------------------------------------------------------------- */

typedef struct fk_lock_config
{
  uint64_t leeway; /* seconds allowed on token exp and nbf; default 0 */
  uint64_t grace;  /* seconds a lock keeps using a state document past its exp; default 0 */
} fk_lock_config;

typedef struct fk_lock
{
  fk_device dev;
  const fk_platform* pf;
  fk_lock_config cfg;
  uint64_t seq, iat, hwm; /* persisted; now_eff = max(clock, hwm) */
  uint8_t* doc;           /* caller's buffer holding the accepted state document */
  size_t doc_cap, doc_len;
  fk_state_doc state; /* doc, decoded; pointers into doc */
} fk_lock;

/* Loads the persistent state through pf->load. pf and its four callbacks must be set. doc/doc_cap: the caller's buffer
 * for the state document (the biggest document the lock accepts); it is empty until one is applied. */
fk_status fk_lock_init(fk_lock* l, const fk_platform* pf, const uint8_t k_dev[32], const char* id, size_t id_len,
                       uint32_t key_version, const fk_lock_config* cfg, uint8_t* doc, size_t doc_cap);
/* Applies a new state document (anti-rollback: seq, then iat, must be newer) and persists it. */
fk_status fk_lock_apply_state(fk_lock* l, const uint8_t* doc, size_t len);
/* After a reboot: reinstalls a document kept by the caller whose seq and iat are those persisted. */
fk_status fk_lock_restore_state(fk_lock* l, const uint8_t* doc, size_t len);
/* Checks a token addressed to this lock. scopes: the roles accepted (n_scopes 0: any role).
 * On FK_OK the hwm is raised to the token's iat. t (optional) receives the decoded token. */
fk_status fk_lock_check_token(fk_lock* l, const uint8_t* tok, size_t len, const char* const* scopes, size_t n_scopes,
                              fk_token* t);

/* ---- Handshake and channel (fleetkey-device(7)) ---------------------------------------------- */

#define FK_NONCE_LEN 16
#define FK_CHALLENGE_LEN (1 + FK_NONCE_LEN)              /* 01 || N_L */
#define FK_RESPONSE_OVERHEAD (1 + FK_NONCE_LEN + 2 + 32) /* 02 || N_P || u16be(len) || token || MAC_P */
#define FK_CONFIRM_LEN (1 + 32)                          /* 03 || MAC_L */
#define FK_FRAME_OVERHEAD (8 + 16)                       /* u64be counter || ciphertext || tag */
#define FK_REPLAY_WINDOW 64

typedef struct fk_channel
{
  uint8_t send_key[32], recv_key[32];
  uint64_t send_ctr;  /* next counter to send */
  uint64_t recv_top;  /* highest counter received + 1; 0 before the first */
  uint64_t recv_bits; /* bit i: counter recv_top - 1 - i was received */
  uint8_t open;
} fk_channel;

typedef struct fk_session
{
  fk_channel ch;
  uint8_t nonces[2 * FK_NONCE_LEN]; /* N_L || N_P */
  uint8_t stage;                    /* 0 idle, 1 challenge sent (lock) / received (phone), 2 established */
  uint8_t k_user[32], mac_p[32];    /* phone side, until the confirmation (fk_wipe an abandoned session) */
  fk_str sub, scope;                /* lock side: the token's subject and role, pointing into the response */
} fk_session;

/* Lock: a fresh challenge; every earlier one is forgotten (one response per challenge). */
fk_status fk_lock_challenge(fk_lock* l, fk_session* s, uint8_t out[FK_CHALLENGE_LEN]);
/* Lock: checks the phone's response (token as fk_lock_check_token, then MAC_P under K_user) and,
 * on FK_OK, writes the confirmation and opens the channel. The challenge is used up either way. */
fk_status fk_lock_respond(fk_lock* l, fk_session* s, const uint8_t* msg, size_t len, const char* const* scopes,
                          size_t n_scopes, uint8_t confirm[FK_CONFIRM_LEN]);
/* Phone: answers a challenge with its token and K_user(D, U, e); out must hold
 * FK_RESPONSE_OVERHEAD + token_len bytes. */
fk_status fk_phone_response(fk_session* s, const fk_platform* pf, const uint8_t* challenge, size_t challenge_len,
                            const char* device_id, size_t id_len, const uint8_t k_user[32], const uint8_t* token,
                            size_t token_len, uint8_t* out, size_t* out_len);
/* Phone: checks the lock's confirmation (proof that the lock holds K_dev) and opens the channel. */
fk_status fk_phone_confirm(fk_session* s, const char* device_id, size_t id_len, const uint8_t* msg, size_t len);

/* Seals plaintext into out (len + FK_FRAME_OVERHEAD bytes). */
fk_status fk_channel_seal(fk_channel* c, const uint8_t* pt, size_t len, uint8_t* out, size_t out_cap, size_t* out_len);
/* Opens a frame into pt (frame_len - FK_FRAME_OVERHEAD bytes): bad_mac, replayed or malformed. */
fk_status fk_channel_open(fk_channel* c, const uint8_t* frame, size_t len, uint8_t* pt, size_t pt_cap, size_t* pt_len);
void fk_channel_close(fk_channel* c);

/* ---- ChaCha20-Poly1305 (RFC 8439) ------------------------------------------------------------ */
void fk_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* ad, size_t ad_len, const uint8_t* pt,
                  size_t len, uint8_t* ct, uint8_t tag[16]);
fk_status fk_aead_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* ad, size_t ad_len,
                       const uint8_t* ct, size_t len, const uint8_t tag[16], uint8_t* pt);

#ifdef __cplusplus
}
#endif
#endif
