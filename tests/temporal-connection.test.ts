/**
 * Temporal's standard environment configuration, read once for client and workers: which
 * settings turn TLS on, errors that name the variable and file, and no key material in logs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectionSettings, describeConnection } from '../engines/temporal/connection.js';

test('address and namespace: flags win over the environment, which wins over the defaults', () => {
  assert.deepEqual(connectionSettings({}, {}), { address: 'localhost:7233', namespace: 'default' });
  const env = { TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NAMESPACE: 'ml' };
  assert.deepEqual(connectionSettings({}, env), { address: 'temporal:7233', namespace: 'ml' });
  assert.equal(connectionSettings({ address: '127.0.0.1:1', namespace: 'x' }, env).address, '127.0.0.1:1');
});

test('an API key or TLS files turn TLS on; the description never shows the key', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-tls-'));
  try {
    const ca = path.join(dir, 'ca.pem');
    const crt = path.join(dir, 'client.pem');
    const key = path.join(dir, 'client.key');
    await writeFile(ca, 'CA BYTES');
    await writeFile(crt, 'CERT BYTES');
    await writeFile(key, 'KEY BYTES');

    const cloud = connectionSettings(
      {},
      { TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_API_KEY: 'sekrit-123' },
    );
    assert.equal(cloud.apiKey, 'sekrit-123');
    assert.deepEqual(cloud.tls, {});
    assert.doesNotMatch(describeConnection(cloud), /sekrit/);
    assert.match(describeConnection(cloud), /TLS, API key/);

    const mtls = connectionSettings(
      {},
      {
        TEMPORAL_TLS_CLIENT_CERT_PATH: crt,
        TEMPORAL_TLS_CLIENT_KEY_PATH: key,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca,
        TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      },
    );
    assert.equal(Buffer.from(mtls.tls!.clientCertPair!.crt).toString(), 'CERT BYTES');
    assert.equal(Buffer.from(mtls.tls!.clientCertPair!.key).toString(), 'KEY BYTES');
    assert.equal(Buffer.from(mtls.tls!.serverRootCACertificate!).toString(), 'CA BYTES');
    assert.equal(mtls.tls!.serverNameOverride, 'temporal.internal');
    assert.doesNotMatch(describeConnection(mtls), /KEY BYTES|CERT BYTES/);
    assert.match(describeConnection(mtls), /mTLS/);

    assert.deepEqual(connectionSettings({}, { TEMPORAL_TLS: 'true' }).tls, {});
    assert.equal(connectionSettings({}, { TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'k' }).tls, undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad settings fail with the variable and file they concern', () => {
  assert.throws(
    () =>
      connectionSettings(
        {},
        { TEMPORAL_TLS_CLIENT_CERT_PATH: '/nowhere/client.pem', TEMPORAL_TLS_CLIENT_KEY_PATH: '/nowhere/k' },
      ),
    /TEMPORAL_TLS_CLIENT_CERT_PATH: cannot read \/nowhere\/client\.pem \(ENOENT\)/,
  );
  assert.throws(
    () => connectionSettings({}, { TEMPORAL_TLS_CLIENT_CERT_PATH: '/x.pem' }),
    /TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together/,
  );
  assert.throws(
    () => connectionSettings({}, { TEMPORAL_TLS: 'maybe' }),
    /TEMPORAL_TLS must be true or false, got 'maybe'/,
  );
});
