/* A lock's main loop on the host, driven one line at a time through a pipe (fleetkey-device(7)):
 *
 *   fk_lock_example KEY_FILE DEVICE_ID KEY_VERSION STATE_DIR [NOW]
 *
 * KEY_FILE holds K_dev in hex (fleetkey device key); STATE_DIR keeps the persistent state
 * (STATE_DIR/persist, 28 bytes) and the last state document (STATE_DIR/document). Requests and
 * answers, one line each, in lower-case hex:
 *   state HEX  -> ok | refused REASON          deliver a state document
 *   hello      -> challenge HEX                 start a handshake
 *   auth HEX   -> welcome HEX | refused REASON  the phone's response; the lock's confirmation
 *   frame HEX  -> frame HEX | refused REASON    a sealed command ("open"); the sealed answer
 *   pin        -> pin CODE                       the pairing code for the state's counter
 * What the lock does is logged on standard error. */
#define _POSIX_C_SOURCE 200809L
#include "host_platform.h"

#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 8192

static const char* const k_roles[] = {"owner", "guest"};

static void refuse(fk_status st)
{
  printf("refused %s\n", fk_status_name(st));
  fprintf(stderr, "lock: refused: %s\n", fk_status_name(st));
}

int main(int argc, char** argv)
{
  static char line[LINE_MAX_LEN], hex[LINE_MAX_LEN];
  static uint8_t doc[2048], msg[LINE_MAX_LEN / 2], out[LINE_MAX_LEN / 2];
  char persist_path[4096], doc_path[4096];
  uint8_t key[64];
  fk_platform pf;
  host_ctx hc;
  fk_lock lock;
  fk_session session;
  fk_status st;
  size_t n;
  if (argc < 5 || argc > 6 || strlen(argv[4]) > 4000) {
    fprintf(stderr, "usage: fk_lock_example KEY_FILE DEVICE_ID KEY_VERSION STATE_DIR [NOW]\n");
    return 2;
  }
  n = read_file(argv[1], (uint8_t*)hex, sizeof hex - 1);
  if (n == (size_t)-1 || (hex[n] = 0, from_hex(hex, key, sizeof key)) != 32) {
    fprintf(stderr, "lock: %s does not hold a 32-byte key in hex\n", argv[1]);
    return 2;
  }
  snprintf(persist_path, sizeof persist_path, "%s/persist", argv[4]);
  snprintf(doc_path, sizeof doc_path, "%s/document", argv[4]);
  hc.state_file = persist_path;
  hc.fixed_now = argc == 6 ? atoll(argv[5]) : -1;
  host_platform(&pf, &hc);
  st = fk_lock_init(&lock, &pf, key, argv[2], strlen(argv[2]), (uint32_t)atol(argv[3]), NULL, doc, sizeof doc);
  memset(key, 0, sizeof key);
  if (st != FK_OK) {
    fprintf(stderr, "lock: cannot start: %s\n", fk_status_name(st));
    return 1;
  }
  n = read_file(doc_path, msg, sizeof msg);
  if (n != (size_t)-1) {
    st = fk_lock_restore_state(&lock, msg, n);
    fprintf(stderr, "lock: state document restored: %s\n", fk_status_name(st));
  }
  memset(&session, 0, sizeof session);
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\n")] = 0;
    if (strncmp(line, "state ", 6) == 0) {
      n = from_hex(line + 6, msg, sizeof msg);
      st = n == (size_t)-1 ? FK_MALFORMED : fk_lock_apply_state(&lock, msg, n);
      if (st == FK_OK && write_file(doc_path, msg, n) != 0) {
        st = FK_PLATFORM_ERROR;
      }
      if (st == FK_OK) {
        printf("ok\n");
        fprintf(stderr, "lock: state document seq %llu applied\n", (unsigned long long)lock.seq);
      } else {
        refuse(st);
      }
    } else if (strcmp(line, "hello") == 0) {
      fk_channel_close(&session.ch);
      st = fk_lock_challenge(&lock, &session, out);
      if (st != FK_OK) {
        refuse(st);
        continue;
      }
      to_hex(out, FK_CHALLENGE_LEN, hex);
      printf("challenge %s\n", hex);
    } else if (strncmp(line, "auth ", 5) == 0) {
      n = from_hex(line + 5, msg, sizeof msg);
      st = n == (size_t)-1 ? FK_MALFORMED : fk_lock_respond(&lock, &session, msg, n, k_roles, 2, out);
      if (st != FK_OK) {
        refuse(st);
        continue;
      }
      to_hex(out, FK_CONFIRM_LEN, hex);
      printf("welcome %s\n", hex);
      fprintf(stderr, "lock: session open for %.*s (%.*s)\n", (int)session.sub.len, (const char*)session.sub.p,
              (int)session.scope.len, (const char*)session.scope.p);
      /* sub and scope point into msg, which the next request overwrites */
      session.sub.len = session.scope.len = 0;
    } else if (strncmp(line, "frame ", 6) == 0) {
      uint8_t pt[256];
      size_t pt_len;
      n = from_hex(line + 6, msg, sizeof msg);
      st = n == (size_t)-1 ? FK_MALFORMED : fk_channel_open(&session.ch, msg, n, pt, sizeof pt, &pt_len);
      if (st != FK_OK) {
        refuse(st);
        continue;
      }
      if (pt_len == 4 && memcmp(pt, "open", 4) == 0) {
        fprintf(stderr, "lock: *** UNLOCKED ***\n");
        memcpy(pt, "opened", 6);
        pt_len = 6;
      } else {
        memcpy(pt, "unknown", 7);
        pt_len = 7;
      }
      st = fk_channel_seal(&session.ch, pt, pt_len, out, sizeof out, &n);
      if (st != FK_OK) {
        refuse(st);
        continue;
      }
      to_hex(out, n, hex);
      printf("frame %s\n", hex);
    } else if (strcmp(line, "pin") == 0) {
      fk_state_doc s;
      char code[16];
      uint64_t counter = lock.doc_len && fk_state_decode(lock.doc, lock.doc_len, &s) == FK_OK ? s.pairing : 0;
      st = fk_pairing_code(&lock.dev, counter, 8, code, sizeof code);
      if (st != FK_OK) {
        refuse(st);
        continue;
      }
      printf("pin %s\n", code);
    } else if (strcmp(line, "bye") == 0) {
      break;
    } else {
      refuse(FK_MALFORMED);
    }
  }
  fk_channel_close(&session.ch);
  memset(&lock, 0, sizeof lock);
  return 0;
}
