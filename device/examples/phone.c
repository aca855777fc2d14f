/* The phone's side, the same C library, driving a lock through a pipe (fleetkey-device(7)):
 *
 *   fk_phone_example --id DEVICE [--user-key-file F] [--token TOKEN] ACTION... -- LOCK_COMMAND...
 *
 * It starts LOCK_COMMAND (fk_lock_example ...) with its standard input and output on two pipes
 * and runs the actions in order:
 *   --deliver FILE   deliver the state document in FILE (raw bytes)
 *   --open           handshake with TOKEN and K_user (hex in F), then a sealed "open"
 *   --record FILE    with the next --open: keep the handshake response in FILE
 *   --replay FILE    send a recorded handshake response to a fresh challenge
 *   --pin            ask the lock for its pairing code
 * Exit status 0 when the lock accepted every action, 1 when it refused one, 2 on usage errors. */
#define _POSIX_C_SOURCE 200809L
#include "host_platform.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *g_to, *g_from;
static char g_line[16384], g_hex[16384];

/* Sends "VERB HEX" (or just VERB) and reads the answer into g_line. */
static const char* ask(const char* verb, const uint8_t* p, size_t n)
{
  if (p != NULL) {
    to_hex(p, n, g_hex);
    fprintf(g_to, "%s %s\n", verb, g_hex);
  } else {
    fprintf(g_to, "%s\n", verb);
  }
  fflush(g_to);
  if (fgets(g_line, sizeof g_line, g_from) == NULL) {
    return "refused lock_gone";
  }
  g_line[strcspn(g_line, "\n")] = 0;
  return g_line;
}

static int expect(const char* answer, const char* prefix)
{
  if (strncmp(answer, prefix, strlen(prefix)) == 0) {
    return 1;
  }
  printf("phone: lock says: %s\n", answer);
  return 0;
}

int main(int argc, char** argv)
{
  static uint8_t buf[8192], tok[8192], m2[8300], m3[64], fr[256];
  const char *id = NULL, *token = NULL, *record = NULL;
  uint8_t k_user[64];
  int have_key = 0, refused = 0, first_cmd = 0, i, to_lock[2], from_lock[2], status;
  size_t tok_len = 0, n;
  host_ctx hc = {"/dev/null", -1};
  fk_platform pf;
  pid_t pid;
  host_platform(&pf, &hc);
  setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the lock's log on standard error */
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      first_cmd = i + 1;
      break;
    }
  }
  if (first_cmd == 0 || first_cmd >= argc) {
    fprintf(stderr, "usage: fk_phone_example --id DEVICE [...] ACTION... -- LOCK_COMMAND...\n");
    return 2;
  }
  if (pipe(to_lock) != 0 || pipe(from_lock) != 0) {
    return 2;
  }
  pid = fork();
  if (pid == 0) {
    dup2(to_lock[0], 0);
    dup2(from_lock[1], 1);
    close(to_lock[1]);
    close(from_lock[0]);
    execvp(argv[first_cmd], argv + first_cmd);
    _exit(127);
  }
  close(to_lock[0]);
  close(from_lock[1]);
  g_to = fdopen(to_lock[1], "w");
  g_from = fdopen(from_lock[0], "r");
  for (i = 1; i < first_cmd - 1; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < first_cmd - 1 ? argv[i + 1] : NULL;
    if (strcmp(a, "--id") == 0 && v) {
      id = v;
      i++;
    } else if (strcmp(a, "--token") == 0 && v) {
      size_t cap = sizeof tok;
      token = v;
      if (fk_base64url_decode(token, strlen(token), tok, &cap) != FK_OK) {
        fprintf(stderr, "phone: the token is not base64url\n");
        return 2;
      }
      tok_len = cap;
      i++;
    } else if (strcmp(a, "--user-key-file") == 0 && v) {
      n = read_file(v, buf, sizeof buf - 1);
      have_key = n != (size_t)-1 && (buf[n] = 0, from_hex((const char*)buf, k_user, sizeof k_user)) == 32;
      i++;
    } else if (strcmp(a, "--deliver") == 0 && v) {
      n = read_file(v, buf, sizeof buf);
      printf("phone: deliver the state document %s\n", strrchr(v, '/') ? strrchr(v, '/') + 1 : v);
      if (expect(ask("state", buf, n == (size_t)-1 ? 0 : n), "ok")) {
        printf("phone: the lock accepted it\n");
      } else {
        refused = 1;
      }
      i++;
    } else if (strcmp(a, "--record") == 0 && v) {
      record = v;
      i++;
    } else if (strcmp(a, "--replay") == 0 && v) {
      n = read_file(v, m2, sizeof m2);
      printf("phone: replay the recorded handshake response %s\n", strrchr(v, '/') ? strrchr(v, '/') + 1 : v);
      (void)ask("hello", NULL, 0);
      if (expect(ask("auth", m2, n == (size_t)-1 ? 0 : n), "welcome")) {
        printf("phone: the lock accepted a replayed handshake!\n");
      } else {
        refused = 1;
      }
      i++;
    } else if (strcmp(a, "--pin") == 0) {
      printf("phone: pairing code: %s\n", ask("pin", NULL, 0));
    } else if (strcmp(a, "--open") == 0) {
      fk_session s;
      size_t m2_len = sizeof m2, fr_len, pt_len;
      uint8_t pt[64];
      const char* ans;
      if (id == NULL || !have_key || token == NULL) {
        fprintf(stderr, "phone: --open needs --id, --user-key-file and --token\n");
        return 2;
      }
      printf("phone: handshake as the token's subject\n");
      ans = ask("hello", NULL, 0);
      if (!expect(ans, "challenge ") || from_hex(ans + 10, buf, sizeof buf) != FK_CHALLENGE_LEN
          || fk_phone_response(&s, &pf, buf, FK_CHALLENGE_LEN, id, strlen(id), k_user, tok, tok_len, m2, &m2_len)
                 != FK_OK) {
        refused = 1;
        continue;
      }
      if (record != NULL) {
        write_file(record, m2, m2_len);
        record = NULL;
      }
      ans = ask("auth", m2, m2_len);
      if (!expect(ans, "welcome ") || from_hex(ans + 8, m3, sizeof m3) != FK_CONFIRM_LEN
          || fk_phone_confirm(&s, id, strlen(id), m3, FK_CONFIRM_LEN) != FK_OK) {
        refused = 1;
        continue;
      }
      printf("phone: lock proved it holds K_dev; channel open\n");
      fk_channel_seal(&s.ch, (const uint8_t*)"open", 4, fr, sizeof fr, &fr_len);
      ans = ask("frame", fr, fr_len);
      n = expect(ans, "frame ") ? from_hex(ans + 6, fr, sizeof fr) : (size_t)-1;
      if (n == (size_t)-1 || fk_channel_open(&s.ch, fr, n, pt, sizeof pt, &pt_len) != FK_OK) {
        refused = 1;
        continue;
      }
      printf("phone: lock answers \"%.*s\"\n", (int)pt_len, (const char*)pt);
      fk_channel_close(&s.ch);
    } else {
      fprintf(stderr, "phone: unknown action %s\n", a);
      return 2;
    }
  }
  fprintf(g_to, "bye\n");
  fclose(g_to);
  fclose(g_from);
  waitpid(pid, &status, 0);
  memset(k_user, 0, sizeof k_user);
  return refused;
}
