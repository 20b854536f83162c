/**
 * Keeping credentials out of everything diffem prints or stores. Messages pass through
 * `redactSecrets` before they reach a log line, a journal or status record or an error the
 * CLI prints: the values of the credential variables below are replaced, as is the
 * user:password part of any URL. S3 credentials belong in the environment (or a profile),
 * never in a store URI, because a store URI is printed, logged and written into records;
 * `refuseCredentialsInUri` stops such a URI without echoing it.
 */

/** Variables whose values are secrets, or paths to secrets, for S3 and for Temporal Cloud. */
export const SECRET_VARIABLES = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_CLIENT_KEY',
  'TEMPORAL_TLS_KEY',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
] as const;

/** Shorter values could be ordinary words; real keys and paths are longer. */
const MIN_SECRET_LENGTH = 6;
const REDACTED = '[redacted]';
// Up to the last '@' before whitespace or a quote: a secret may hold '/', which ends no userinfo here.
const USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s@'"]*@/g;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function redactSecrets(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text.replace(USERINFO, `$1${REDACTED}@`);
  for (const name of SECRET_VARIABLES) {
    const value = env[name]?.trim();
    if (!value || value.length < MIN_SECRET_LENGTH) continue;
    // A secret pasted into a URL arrives percent-encoded ('/' as %2F) in messages that quote it.
    for (const form of new Set([value, encodeURIComponent(value)]))
      out = out.replace(new RegExp(escapeRegExp(form), 'g'), REDACTED);
  }
  return out;
}

export class CredentialsInUriError extends Error {
  readonly type = 'CredentialsInUri' as const;
  override readonly name = 'CredentialsInUriError';
  readonly nonRetryable = true;
}

/** Throws, without repeating the secret, when `uri` carries user:password@ before its host. */
export function refuseCredentialsInUri(uri: string): void {
  // No S3 bucket or diffem key holds '@', so any '@' in an s3:// URI is userinfo.
  if (/^s3:\/\/.*@/is.test(uri) || /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*@/.test(uri)) {
    throw new CredentialsInUriError(
      `store URI ${redactSecrets(uri)} holds credentials; diffem refuses them there because a store URI is ` +
        'printed, logged and stored in campaign records. Use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ' +
        'or AWS_PROFILE, instead',
    );
  }
}
