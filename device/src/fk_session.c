/* The proof-of-possession handshake and the ChaCha20-Poly1305 channel (fleetkey-device(7)). */
#include "fk_internal.h"

static const char k_label_phone[] = "fleetkey/v1 handshake";
static const char k_label_lock[] = "fleetkey/v1 handshake lock";

/* MAC_P = HMAC(K_user, info(label_phone, D, N_L, N_P, token)), and MAC_L likewise over MAC_P. */
static void transcript_mac(const uint8_t k_user[32], const char* label, size_t label_len, const uint8_t* id,
                           size_t id_len, const uint8_t* n_lock, const uint8_t* n_phone, const uint8_t* last,
                           size_t last_len, uint8_t out[32])
{
  fk_hmac c;
  fk_hmac_init(&c, k_user, 32);
  fk_hmac_field(&c, (const uint8_t*)label, label_len);
  fk_hmac_field(&c, id, id_len);
  fk_hmac_field(&c, n_lock, FK_NONCE_LEN);
  fk_hmac_field(&c, n_phone, FK_NONCE_LEN);
  fk_hmac_field(&c, last, last_len);
  fk_hmac_final(&c, out);
}

/* PRK_s = HKDF-Extract(N_L || N_P, K_user); K_dir = HKDF-Expand(PRK_s, info("session", dir, MAC_P), 32) */
static void session_keys(fk_channel* ch, const uint8_t k_user[32], const uint8_t nonces[2 * FK_NONCE_LEN],
                         const uint8_t mac_p[32], int lock_side)
{
  uint8_t prk[32];
  memset(ch, 0, sizeof *ch);
  fk_hkdf_extract(nonces, 2 * FK_NONCE_LEN, k_user, 32, prk);
  fk_derive_session(prk, "phone-to-lock", mac_p, lock_side ? ch->recv_key : ch->send_key);
  fk_derive_session(prk, "lock-to-phone", mac_p, lock_side ? ch->send_key : ch->recv_key);
  ch->open = 1;
  fk_wipe(prk, sizeof prk);
}

fk_status fk_lock_challenge(fk_lock* l, fk_session* s, uint8_t out[FK_CHALLENGE_LEN])
{
  fk_wipe(s, sizeof *s);
  if (l->pf->random(l->pf->ctx, s->nonces, FK_NONCE_LEN) != 0) {
    return FK_PLATFORM_ERROR;
  }
  out[0] = 0x01;
  memcpy(out + 1, s->nonces, FK_NONCE_LEN);
  s->stage = 1;
  return FK_OK;
}

/* The second half of fk_lock_respond, after the token: MAC_P under K_user(D, sub, epoch), then the
 * confirmation and the session keys. Its own frame, so K_user is not on the stack during the
 * token check. */
static FK_NOINLINE fk_status prove(fk_lock* l, fk_session* s, const fk_token* t, const uint8_t* token, size_t token_len,
                                   uint8_t confirm[FK_CONFIRM_LEN])
{
  uint8_t k_user[32], mac[32];
  fk_status st = FK_BAD_MAC;
  fk_user_key(&l->dev, (const char*)t->sub.p, t->sub.len, t->epoch, k_user);
  transcript_mac(k_user, k_label_phone, sizeof k_label_phone - 1, l->dev.id, l->dev.id_len, s->nonces,
                 s->nonces + FK_NONCE_LEN, token, token_len, mac);
  if (fk_equal(mac, token + token_len, 32)) {
    st = fk_lock_accepted(l, t);
  }
  if (st == FK_OK) {
    session_keys(&s->ch, k_user, s->nonces, mac, 1);
    confirm[0] = 0x03;
    transcript_mac(k_user, k_label_lock, sizeof k_label_lock - 1, l->dev.id, l->dev.id_len, s->nonces,
                   s->nonces + FK_NONCE_LEN, mac, 32, confirm + 1);
  }
  fk_wipe(k_user, sizeof k_user);
  fk_wipe(mac, sizeof mac);
  return st;
}

fk_status fk_lock_respond(fk_lock* l, fk_session* s, const uint8_t* msg, size_t len, const char* const* scopes,
                          size_t n_scopes, uint8_t confirm[FK_CONFIRM_LEN])
{
  fk_token t;
  size_t token_len;
  fk_status st;
  if (s->stage != 1) {
    return FK_REPLAYED; /* no challenge outstanding: each one answers one response */
  }
  s->stage = 0;
  if (len < FK_RESPONSE_OVERHEAD || msg[0] != 0x02) {
    return FK_MALFORMED;
  }
  token_len = ((size_t)msg[17] << 8) | msg[18];
  if (token_len != len - FK_RESPONSE_OVERHEAD) {
    return FK_MALFORMED;
  }
  memcpy(s->nonces + FK_NONCE_LEN, msg + 1, FK_NONCE_LEN);
  st = fk_lock_check_token_only(l, msg + 19, token_len, scopes, n_scopes, &t);
  if (st == FK_OK && (t.sub.p == NULL || !t.has_epoch)) {
    st = FK_UNKNOWN_KEY; /* a token bound to no grant has no user key to prove */
  }
  if (st == FK_OK) {
    st = prove(l, s, &t, msg + 19, token_len, confirm);
  }
  if (st == FK_OK) {
    s->sub = t.sub;
    s->scope = t.scope;
    s->stage = 2;
  }
  return st;
}

fk_status fk_phone_response(fk_session* s, const fk_platform* pf, const uint8_t* challenge, size_t challenge_len,
                            const char* device_id, size_t id_len, const uint8_t k_user[32], const uint8_t* token,
                            size_t token_len, uint8_t* out, size_t* out_len)
{
  uint8_t* n_phone = out + 1;
  fk_wipe(s, sizeof *s);
  if (challenge_len != FK_CHALLENGE_LEN || challenge[0] != 0x01) {
    return FK_MALFORMED;
  }
  if (token_len > 0xffff || *out_len < FK_RESPONSE_OVERHEAD + token_len || id_len > 0xffff) {
    return FK_INVALID_ARGUMENT;
  }
  if (pf->random(pf->ctx, n_phone, FK_NONCE_LEN) != 0) {
    return FK_PLATFORM_ERROR;
  }
  memcpy(s->nonces, challenge + 1, FK_NONCE_LEN);
  out[0] = 0x02;
  out[17] = (uint8_t)(token_len >> 8);
  out[18] = (uint8_t)token_len;
  memcpy(out + 19, token, token_len);
  transcript_mac(k_user, k_label_phone, sizeof k_label_phone - 1, (const uint8_t*)device_id, id_len, s->nonces, n_phone,
                 token, token_len, out + 19 + token_len);
  memcpy(s->mac_p, out + 19 + token_len, 32);
  memcpy(s->k_user, k_user, 32);
  memcpy(s->nonces + FK_NONCE_LEN, n_phone, FK_NONCE_LEN);
  *out_len = FK_RESPONSE_OVERHEAD + token_len;
  s->stage = 1;
  return FK_OK;
}

fk_status fk_phone_confirm(fk_session* s, const char* device_id, size_t id_len, const uint8_t* msg, size_t len)
{
  uint8_t mac[32];
  int ok;
  if (s->stage != 1) {
    return FK_INVALID_ARGUMENT;
  }
  if (len != FK_CONFIRM_LEN || msg[0] != 0x03) {
    return FK_MALFORMED;
  }
  transcript_mac(s->k_user, k_label_lock, sizeof k_label_lock - 1, (const uint8_t*)device_id, id_len, s->nonces,
                 s->nonces + FK_NONCE_LEN, s->mac_p, 32, mac);
  ok = fk_equal(mac, msg + 1, 32);
  if (ok) {
    session_keys(&s->ch, s->k_user, s->nonces, s->mac_p, 0);
  }
  fk_wipe(s->k_user, sizeof s->k_user);
  fk_wipe(mac, sizeof mac);
  s->stage = ok ? 2 : 0;
  return ok ? FK_OK : FK_BAD_MAC;
}

static void frame_nonce(uint8_t nonce[12], const uint8_t ctr[8])
{
  memset(nonce, 0, 4);
  memcpy(nonce + 4, ctr, 8);
}

fk_status fk_channel_seal(fk_channel* c, const uint8_t* pt, size_t len, uint8_t* out, size_t out_cap, size_t* out_len)
{
  uint8_t nonce[12];
  if (!c->open || out_cap < FK_FRAME_OVERHEAD || len > out_cap - FK_FRAME_OVERHEAD) {
    return FK_INVALID_ARGUMENT;
  }
  if (c->send_ctr == UINT64_MAX) {
    return FK_INVALID_ARGUMENT; /* counters exhausted: a new handshake is needed */
  }
  fk_store64_be(out, c->send_ctr++);
  frame_nonce(nonce, out);
  fk_aead_seal(c->send_key, nonce, out, 8, pt, len, out + 8, out + 8 + len);
  *out_len = len + FK_FRAME_OVERHEAD;
  return FK_OK;
}

fk_status fk_channel_open(fk_channel* c, const uint8_t* frame, size_t len, uint8_t* pt, size_t pt_cap, size_t* pt_len)
{
  uint8_t nonce[12];
  uint64_t ctr, back;
  size_t n;
  fk_status st;
  if (!c->open) {
    return FK_INVALID_ARGUMENT;
  }
  if (len < FK_FRAME_OVERHEAD) {
    return FK_MALFORMED;
  }
  n = len - FK_FRAME_OVERHEAD;
  if (pt_cap < n) {
    return FK_INVALID_ARGUMENT;
  }
  ctr = fk_load64_be(frame);
  if (ctr == UINT64_MAX) {
    return FK_MALFORMED; /* never sent */
  }
  /* the window: bit i of recv_bits stands for counter recv_top - 1 - i */
  back = ctr < c->recv_top ? c->recv_top - 1 - ctr : 0;
  if (ctr < c->recv_top && (back >= FK_REPLAY_WINDOW || ((c->recv_bits >> back) & 1u) != 0)) {
    return FK_REPLAYED;
  }
  frame_nonce(nonce, frame);
  st = fk_aead_open(c->recv_key, nonce, frame, 8, frame + 8, n, frame + 8 + n, pt);
  if (st != FK_OK) {
    return st;
  }
  if (ctr >= c->recv_top) {
    uint64_t shift = ctr + 1 - c->recv_top;
    c->recv_bits = shift >= FK_REPLAY_WINDOW ? 0 : c->recv_bits << shift;
    c->recv_top = ctr + 1;
  }
  c->recv_bits |= (uint64_t)1 << back;
  *pt_len = n;
  return FK_OK;
}

void fk_channel_close(fk_channel* c)
{
  fk_wipe(c, sizeof *c);
}
