/**
 * How diffem reaches a Temporal server, for the client (CLI) and the workers alike: one
 * reading of Temporal's standard environment configuration, so a campaign started with a
 * setting is served by workers with the same one.
 *
 * Variables (the names every Temporal SDK and the `temporal` CLI read):
 *   TEMPORAL_ADDRESS                      host:port of the frontend (default localhost:7233)
 *   TEMPORAL_NAMESPACE                    default 'default'
 *   TEMPORAL_API_KEY                      sent as `Authorization: Bearer ...`; implies TLS
 *   TEMPORAL_TLS                          'true' / 'false': force TLS on or off
 *   TEMPORAL_TLS_CLIENT_CERT_PATH         mTLS client certificate (PEM) ...
 *   TEMPORAL_TLS_CLIENT_KEY_PATH          ... and its private key (both or neither)
 *   TEMPORAL_TLS_SERVER_CA_CERT_PATH      CA that signed the server's certificate
 *   TEMPORAL_TLS_SERVER_NAME              server name (SNI) to verify, when it differs from the host
 * Any TLS file or an API key turns TLS on, as Temporal's envconfig does. Explicit
 * `--address` / `--namespace` win over the environment.
 *
 * Key material is read here and handed to the SDK only: `describeConnection` says which
 * settings are in use without their values, and errors name variables and paths, never contents.
 */
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';

export interface TemporalTarget {
  /** host:port of the frontend (default TEMPORAL_ADDRESS, else localhost:7233). */
  address?: string;
  /** Default TEMPORAL_NAMESPACE, else 'default'. */
  namespace?: string;
}

export interface TemporalConnectionSettings {
  address: string;
  namespace: string;
  /** undefined: plain gRPC. */
  tls?: TLSConfig;
  apiKey?: string;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value && value.trim() ? value.trim() : undefined;
}

export function temporalAddress(address?: string, env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(address) ?? nonEmpty(env.TEMPORAL_ADDRESS) ?? 'localhost:7233';
}

export function temporalNamespace(namespace?: string, env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(namespace) ?? nonEmpty(env.TEMPORAL_NAMESPACE) ?? 'default';
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`${variable}: cannot read ${file} (${code})`, { cause: error });
  }
}

function parseBoolean(variable: string, text: string | undefined): boolean | undefined {
  const value = nonEmpty(text)?.toLowerCase();
  if (value === undefined) return undefined;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new Error(`${variable} must be true or false, got '${text}'`);
}

/** The settings for `target` under the environment `env` (process.env by default). */
export function connectionSettings(
  target: TemporalTarget = {},
  env: NodeJS.ProcessEnv = process.env,
): TemporalConnectionSettings {
  const settings: TemporalConnectionSettings = {
    address: temporalAddress(target.address, env),
    namespace: temporalNamespace(target.namespace, env),
  };
  const apiKey = nonEmpty(env.TEMPORAL_API_KEY);
  const certPath = nonEmpty(env.TEMPORAL_TLS_CLIENT_CERT_PATH);
  const keyPath = nonEmpty(env.TEMPORAL_TLS_CLIENT_KEY_PATH);
  const caPath = nonEmpty(env.TEMPORAL_TLS_SERVER_CA_CERT_PATH);
  const serverName = nonEmpty(env.TEMPORAL_TLS_SERVER_NAME);
  const forced = parseBoolean('TEMPORAL_TLS', env.TEMPORAL_TLS);
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new Error(
      'TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together: set both for mTLS, or neither',
    );
  }
  if (apiKey) settings.apiKey = apiKey;
  const anyTls = apiKey !== undefined || certPath !== undefined || caPath !== undefined || serverName !== undefined;
  if (forced === false) {
    if (certPath || caPath || serverName)
      throw new Error('TEMPORAL_TLS is false but TLS files or a server name are set: remove one or the other');
    return settings;
  }
  if (!(forced || anyTls)) return settings;
  const tls: TLSConfig = {};
  if (serverName) tls.serverNameOverride = serverName;
  if (caPath) tls.serverRootCACertificate = readPem('TEMPORAL_TLS_SERVER_CA_CERT_PATH', caPath);
  if (certPath && keyPath) {
    tls.clientCertPair = {
      crt: readPem('TEMPORAL_TLS_CLIENT_CERT_PATH', certPath),
      key: readPem('TEMPORAL_TLS_CLIENT_KEY_PATH', keyPath),
    };
  }
  settings.tls = tls;
  return settings;
}

/** A log line for the settings: which are in use, never a key or certificate. */
export function describeConnection(settings: TemporalConnectionSettings): string {
  const parts = [`${settings.address} (namespace ${settings.namespace}`];
  if (settings.tls) parts.push(settings.tls.clientCertPair ? 'mTLS' : 'TLS');
  if (settings.apiKey) parts.push('API key');
  return parts.join(', ') + ')';
}
