/* The lock: persistent anti-rollback state, state documents and token checks (fleetkey-state(5),
 * fleetkey-tokens(5) VERIFICATION steps 1 to 8, then the state document's rules). */
#include "fk_internal.h"

static const uint8_t k_magic[4] = {'F', 'K', 'D', 1};

static fk_status persist(fk_lock* l, uint64_t seq, uint64_t iat, uint64_t hwm)
{
  uint8_t b[FK_PERSIST_SIZE];
  memcpy(b, k_magic, 4);
  fk_store64_be(b + 4, seq);
  fk_store64_be(b + 12, iat);
  fk_store64_be(b + 20, hwm);
  if (l->pf->store(l->pf->ctx, b, sizeof b) != 0) {
    return FK_PLATFORM_ERROR;
  }
  l->seq = seq;
  l->iat = iat;
  l->hwm = hwm;
  return FK_OK;
}

fk_status fk_lock_init(fk_lock* l, const fk_platform* pf, const uint8_t k_dev[32], const char* id, size_t id_len,
                       uint32_t key_version, const fk_lock_config* cfg, uint8_t* doc, size_t doc_cap)
{
  uint8_t b[FK_PERSIST_SIZE];
  int rc;
  fk_status st;
  memset(l, 0, sizeof *l);
  st = fk_device_init(&l->dev, k_dev, id, id_len, key_version);
  if (st != FK_OK) {
    return st;
  }
  l->pf = pf;
  if (cfg != NULL) {
    l->cfg = *cfg;
  }
  l->doc = doc;
  l->doc_cap = doc_cap;
  rc = pf->load(pf->ctx, b, sizeof b);
  if (rc == 1) {
    return FK_OK; /* a new lock: seq 0, no clock high-water mark */
  }
  if (rc != 0 || fk_bytes_cmp(b, 4, k_magic, 4) != 0) {
    fk_wipe(l, sizeof *l);
    return FK_PLATFORM_ERROR; /* fail closed rather than forget the anti-rollback state */
  }
  l->seq = fk_load64_be(b + 4);
  l->iat = fk_load64_be(b + 12);
  l->hwm = fk_load64_be(b + 20);
  return FK_OK;
}

static fk_status now_eff(const fk_lock* l, uint64_t* now)
{
  if (l->pf->now(l->pf->ctx, now) != 0) {
    return FK_PLATFORM_ERROR;
  }
  if (*now < l->hwm) {
    *now = l->hwm;
  }
  return FK_OK;
}

/* The kid is "vN/D" with this lock's master key version N and id D. */
static int kid_is_mine(const fk_lock* l, fk_str kid)
{
  uint32_t version;
  fk_str dev;
  return fk_kid_parse(kid, &version, &dev) == FK_OK && version == l->dev.key_version
         && fk_str_eq(dev, (const char*)l->dev.id, l->dev.id_len);
}

/* a + b >= limit? without overflow: a time past the end of uint64 is in the future. */
static int reached(uint64_t now, uint64_t t, uint64_t slack)
{
  return t <= UINT64_MAX - slack && now >= t + slack;
}

/* Decoding, kid, MAC, audience and expiry: the checks shared by apply and restore. */
static fk_status check_state(fk_lock* l, const uint8_t* doc, size_t len, fk_state_doc* s, uint64_t* now)
{
  uint8_t key[32], mac[32];
  int ok;
  fk_status st = fk_state_decode(doc, len, s);
  if (st != FK_OK) {
    return st;
  }
  if (!kid_is_mine(l, s->kid)) {
    return FK_UNKNOWN_KEY;
  }
  if (s->tag.len != 32) {
    return FK_BAD_MAC;
  }
  fk_derive(l->dev.prk_dev, FK_LIT("revocations"), NULL, 0, 0, 0, key);
  fk_cose_mac(key, s->protected_hdr, s->payload, mac);
  ok = fk_equal(mac, s->tag.p, 32);
  fk_wipe(key, sizeof key);
  if (!ok) {
    return FK_BAD_MAC;
  }
  if (!fk_str_eq(s->aud, (const char*)l->dev.id, l->dev.id_len)) {
    return FK_WRONG_AUDIENCE;
  }
  st = now_eff(l, now);
  if (st != FK_OK) {
    return st;
  }
  return reached(*now, s->exp, 0) ? FK_EXPIRED : FK_OK;
}

static fk_status install(fk_lock* l, const uint8_t* doc, size_t len, const fk_state_doc* s)
{
  fk_status st;
  if (len > l->doc_cap) {
    return FK_INVALID_ARGUMENT;
  }
  st = persist(l, s->seq, s->iat, s->iat > l->hwm ? s->iat : l->hwm);
  if (st == FK_OK) {
    memcpy(l->doc, doc, len);
    l->doc_len = len;
    (void)fk_state_decode(l->doc, len, &l->state); /* the same bytes decoded before */
  }
  return st;
}

fk_status fk_lock_apply_state(fk_lock* l, const uint8_t* doc, size_t len)
{
  fk_state_doc s;
  uint64_t now;
  fk_status st = check_state(l, doc, len, &s, &now);
  if (st != FK_OK) {
    return st;
  }
  if (!(s.seq > l->seq || (s.seq == l->seq && s.iat > l->iat))) {
    return FK_REPLAYED;
  }
  return install(l, doc, len, &s);
}

fk_status fk_lock_restore_state(fk_lock* l, const uint8_t* doc, size_t len)
{
  fk_state_doc s;
  uint64_t now;
  fk_status st = check_state(l, doc, len, &s, &now);
  if (st != FK_OK) {
    return st;
  }
  if (s.seq != l->seq || s.iat != l->iat) {
    return FK_REPLAYED; /* not the document last accepted: apply it instead */
  }
  return install(l, doc, len, &s);
}

static int in_list(fk_str items, size_t n, fk_str id)
{
  fk_cbor r;
  size_t i;
  r.p = items.p;
  r.end = items.p + items.len;
  for (i = 0; i < n; i++) {
    fk_str s;
    (void)fk_cbor_str(&r, FK_CBOR_BSTR, &s); /* validated when the document was applied */
    if (fk_str_eq(s, (const char*)id.p, id.len)) {
      return 1;
    }
  }
  return 0;
}

static int retired(fk_str items, size_t n, uint64_t version)
{
  fk_cbor r;
  size_t i;
  r.p = items.p;
  r.end = items.p + items.len;
  for (i = 0; i < n; i++) {
    uint64_t v = 0;
    (void)fk_cbor_uint(&r, &v);
    if (v == version) {
      return 1;
    }
  }
  return 0;
}

/* The state document's rules for a token whose MAC, times and audience are good. */
static FK_NOINLINE fk_status check_against_state(const fk_lock* l, const fk_token* t, uint64_t now)
{
  const fk_state_doc* s = &l->state;
  fk_cbor r;
  uint8_t uid[32];
  size_t i;
  if (l->doc_len == 0 || reached(now, s->exp, l->cfg.grace)) {
    return FK_STALE;
  }
  if (s->status != 0) {
    return FK_REVOKED;
  }
  if (retired(s->retired, s->n_retired, l->dev.key_version)) {
    return FK_UNKNOWN_KEY;
  }
  if (in_list(s->revoked, s->n_revoked, t->cti)) {
    return FK_REVOKED;
  }
  fk_derive(l->dev.prk_dev, FK_LIT("state-user"), t->sub.p, t->sub.len, 0, 0, uid);
  r.p = s->epochs.p;
  r.end = s->epochs.p + s->epochs.len;
  for (i = 0; i < s->n_epochs; i++) {
    fk_str k;
    uint64_t min_epoch = 0;
    (void)fk_cbor_str(&r, FK_CBOR_BSTR, &k);
    (void)fk_cbor_uint(&r, &min_epoch);
    if (t->sub.p != NULL && fk_bytes_cmp(k.p, k.len, uid, 8) == 0) {
      return t->has_epoch && t->epoch >= min_epoch ? FK_OK : FK_REVOKED;
    }
  }
  return t->has_epoch ? FK_REVOKED : FK_OK; /* no grant: only a service token, bound by its exp */
}

/* The token's scope equals the NUL-terminated role (no strlen: no libc beyond memcpy/memset). */
static int scope_is(fk_str scope, const char* role)
{
  size_t k;
  for (k = 0; k < scope.len && role[k] != 0 && role[k] == (char)scope.p[k]; k++) {
  }
  return k == scope.len && role[k] == 0;
}

/* Steps 4 and 5: the kid names this lock's key, and the tag is K_tok_dev(D, L)'s. */
static FK_NOINLINE fk_status token_key_and_mac(const fk_lock* l, const fk_token* t)
{
  uint8_t key[32], mac[32];
  size_t tag_len = t->alg == 5 ? 32 : 8;
  int ok;
  if (!kid_is_mine(l, t->kid)) {
    return FK_UNKNOWN_KEY;
  }
  if (t->tag.len != tag_len) {
    return FK_BAD_MAC;
  }
  fk_derive(l->dev.prk_dev, FK_LIT("token"), (const uint8_t*)(t->alg == 5 ? "cose-hmac256/256" : "cose-hmac256/64"),
            t->alg == 5 ? 16 : 15, 0, 0, key);
  fk_cose_mac(key, t->protected_hdr, t->claims, mac);
  ok = fk_equal(mac, t->tag.p, tag_len);
  fk_wipe(key, sizeof key);
  fk_wipe(mac, sizeof mac);
  return ok ? FK_OK : FK_BAD_MAC;
}

fk_status fk_lock_check_token_only(fk_lock* l, const uint8_t* tok, size_t len, const char* const* scopes,
                                   size_t n_scopes, fk_token* t)
{
  uint64_t now;
  size_t i;
  fk_status st = fk_token_decode(tok, len, t);
  if (st == FK_OK) {
    st = token_key_and_mac(l, t);
  }
  if (st != FK_OK) {
    return st;
  }
  st = now_eff(l, &now);
  if (st != FK_OK) {
    return st;
  }
  if (t->has_exp && (t->exp < 0 || reached(now, (uint64_t)t->exp, l->cfg.leeway))) {
    return FK_EXPIRED;
  }
  /* now + leeway < nbf, written so that nothing can overflow */
  if (t->has_nbf && t->nbf > 0 && (uint64_t)t->nbf > l->cfg.leeway && now < (uint64_t)t->nbf - l->cfg.leeway) {
    return FK_NOT_YET_VALID;
  }
  if (!fk_str_eq(t->aud, (const char*)l->dev.id, l->dev.id_len)) {
    return FK_WRONG_AUDIENCE;
  }
  st = check_against_state(l, t, now);
  if (st != FK_OK) {
    return st;
  }
  for (i = 0; i < n_scopes && !scope_is(t->scope, scopes[i]); i++) {
  }
  if (n_scopes > 0 && i == n_scopes) {
    return FK_FORBIDDEN;
  }
  return FK_OK;
}

fk_status fk_lock_accepted(fk_lock* l, const fk_token* t)
{
  if (t->has_iat && t->iat > 0 && (uint64_t)t->iat > l->hwm) {
    return persist(l, l->seq, l->iat, (uint64_t)t->iat);
  }
  return FK_OK;
}

fk_status fk_lock_check_token(fk_lock* l, const uint8_t* tok, size_t len, const char* const* scopes, size_t n_scopes,
                              fk_token* out)
{
  fk_token tt, *t = out != NULL ? out : &tt;
  fk_status st = fk_lock_check_token_only(l, tok, len, scopes, n_scopes, t);
  return st == FK_OK ? fk_lock_accepted(l, t) : st;
}
