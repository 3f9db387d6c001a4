"""The attack suite: every attack a real request against a real Bastion, written to fail on the code
before its fix. The classes it covers, and where each is tried:

- Forged, expired, foreign, revoked and misused credentials; tokens for another server, outside their
  network, or beyond their scope; role and team escalation; foreign Origin; oversized bodies
  (test_attacks.py, test_token_reach.py, test_keys.py).
- A non-admin makes the host run a program: stdio commands, arguments, environment, `bastion wrap`
  (test_host_exec.py).
- Server-side request forgery: redirects, token endpoints, unresolvable and rebinding names, every
  outbound fetch, error texts that would scan ports (test_ssrf.py).
- Resource exhaustion: slow metadata documents, registration floods, held calls, slow clients,
  upstreams that send too much (test_exhaustion.py, test_slow_clients.py, test_upstream_limits.py,
  test_upstream_payloads.py, test_stdio_payloads.py, test_stdio_stderr_flood.py).
- One caller's data reaching another, and someone else's session (test_cross_caller.py,
  test_sse_sessions.py).
- Side doors around the one request pipeline, authentication skipped (test_side_doors.py,
  test_authentication_stage.py).
- Names, URIs and policies: takeover of another upstream's names, percent-encoding bypasses, rules
  that silently never match (test_name_takeover.py, test_uri_normalisation.py, test_policy_subjects.py).
- Abuse of Bastion's authorization server: replayed codes, dangerous redirect URIs, unverified client
  names (test_oauth_abuse.py); locking others out (test_lockout.py).
- Input that crashes a handler, and fuzzing of REST and JSON-RPC bodies for 5xx (test_bad_input.py,
  test_fuzz_bodies.py); information leaks (test_info_leaks.py).
"""
