// Who may use the admin port's /debug/* endpoints. They show routing decisions and change the log
// level, so they are not open like /healthz and /metrics: with an admin token configured every caller
// must present it (a proxy on the same host would otherwise make any client "loopback"); without
// one, only loopback callers are answered.
import { createHash, timingSafeEqual } from "node:crypto";

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

export type DebugAccess = { allowed: true; via: "token" | "loopback" } | { allowed: false; status: 401 | 403; error: string };

export function debugAccess(remoteAddress: string | undefined, authorization: string | undefined, token: string | undefined): DebugAccess {
  if (token !== undefined && token !== "") {
    const presented = bearerToken(authorization);
    if (presented === undefined) return { allowed: false, status: 401, error: "an admin token is required: send Authorization: Bearer <token>" };
    return sameSecret(presented, token) ? { allowed: true, via: "token" } : { allowed: false, status: 401, error: "wrong admin token" };
  }
  if (remoteAddress !== undefined && LOOPBACK.has(remoteAddress)) return { allowed: true, via: "loopback" };
  return { allowed: false, status: 403, error: "/debug/* answers loopback callers only; set --admin-token to reach it from elsewhere" };
}

function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S(?:.*\S)?)\s*$/i.exec(authorization ?? "")?.[1];
}

/** Equal-length digests keep timingSafeEqual from throwing and the comparison from leaking the length. */
function sameSecret(presented: string, expected: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
