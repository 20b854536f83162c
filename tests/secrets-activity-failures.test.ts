/**
 * On Temporal an activity's error becomes a failure record in the workflow history: message,
 * stack trace and the whole cause chain, converted by the SDK's DefaultFailureConverter. Errors
 * leaving an activity (`asActivity`) must therefore already be free of secrets; the records'
 * and CLI's redaction never sees the history. This converts real thrown errors with the real
 * converter and searches the failure for each secret, raw and percent-encoded (as a secret
 * pasted into a URL is quoted).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApplicationFailure, DefaultFailureConverter, defaultPayloadConverter } from '@temporalio/common';

import { asActivity, BadInputError } from '../activities/errors.js';
import { redactSecrets } from '../store/secrets.js';

const SECRET_ACCESS_KEY = 'fake/Failure+Secret/Key/Diffem0246813579';
const TEMPORAL_API_KEY = 'tmprl-fake-failure-key-8d2e4c';
const SECRETS = [SECRET_ACCESS_KEY, encodeURIComponent(SECRET_ACCESS_KEY), TEMPORAL_API_KEY];
const VARIABLES = { AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY, TEMPORAL_API_KEY };

const saved: Record<string, string | undefined> = {};
before(() => {
  for (const [name, value] of Object.entries(VARIABLES)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
});
after(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/** What the history would hold: the failure proto, every string in it. */
function historyFailure(error: unknown): string {
  const failure = new DefaultFailureConverter().errorToFailure(error, defaultPayloadConverter);
  const parts: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('latin1'));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(failure);
  return parts.join('\n');
}

async function thrownBy(body: () => Promise<never>): Promise<unknown> {
  try {
    await asActivity(body);
  } catch (error) {
    return error;
  }
  assert.fail('the activity did not throw');
}

function assertNoSecret(text: string): void {
  for (const secret of SECRETS)
    assert.ok(!text.includes(secret), `the failure holds ${secret.slice(0, 10)}…:\n${text}`);
}

test('an activity error quoting a secret, in its message or a cause, reaches the history redacted', async () => {
  const cause = new Error(`upstream said: bad token ${TEMPORAL_API_KEY}`);
  const error = await thrownBy(async () => {
    throw new Error(`GET s3://bucket/k?sig=${encodeURIComponent(SECRET_ACCESS_KEY)} failed`, { cause });
  });
  // The unredacted failure would hold them: the search below can see a secret.
  assert.ok(historyFailure(new Error('x', { cause })).includes(TEMPORAL_API_KEY));
  const text = historyFailure(error);
  assertNoSecret(text);
  assert.match(text, /GET s3:\/\/bucket\/k\?sig=\[redacted\] failed/);
  assert.ok(error instanceof ApplicationFailure);
  assert.equal(error.type, 'Error');
  assert.equal(error.nonRetryable, false, 'an ordinary error stays retryable');
});

test('a bad-input error quoting a secret stays non-retryable, with its type, and redacted', async () => {
  const error = await thrownBy(async () => {
    throw new BadInputError('InvalidConfig', `store key ${SECRET_ACCESS_KEY} is not a config field`);
  });
  assertNoSecret(historyFailure(error));
  assert.ok(error instanceof ApplicationFailure);
  assert.equal(error.type, 'InvalidConfig');
  assert.equal(error.nonRetryable, true);
});

test('an error without secrets leaves the activity as it was thrown, cause included', async () => {
  const original = new Error('disk full', { cause: new Error('ENOSPC') });
  assert.equal(await thrownBy(() => Promise.reject(original)), original);
  assert.equal(redactSecrets(`key=${encodeURIComponent(SECRET_ACCESS_KEY)}`), 'key=[redacted]');
});
