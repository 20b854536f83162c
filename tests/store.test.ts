/**
 * One behavioural suite for every ArtifactStore backend (filesystem in a temp dir, S3 on a
 * real s3rver endpoint), plus what only one backend can show: S3 surviving a flaky
 * endpoint, and filesystem puts staying atomic when the writer is SIGKILLed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';

import { FsArtifactStore } from '../store/fs.js';
import { openStore } from '../store/open.js';
import { parseS3Uri, S3ArtifactStore, s3ClientConfig } from '../store/s3.js';
import {
  ArtifactCorruptError,
  ArtifactNotFoundError,
  type ArtifactStore,
  getJson,
  InvalidKeyError,
  putJson,
  sha256Hex,
  validateKey,
} from '../store/store.js';
import { startFlakyProxy, startS3, S3_TEST_CREDENTIALS, type S3Fixture } from './helpers/s3.js';

interface Backend {
  store: ArtifactStore;
  /** Replaces the stored bytes of `key` behind the store's back. */
  tamper(key: string, bytes: Uint8Array): Promise<void>;
  /** Leaves under `prefix` what a writer killed mid-put would leave. */
  litter(prefix: string): Promise<void>;
  /** A store of the same kind on which any real I/O fails. */
  unreachable: ArtifactStore;
  close(): Promise<void>;
}

const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text);

function isError<E extends Error>(kind: new (...args: never[]) => E, check: (err: E) => void): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof kind, `expected ${kind.name}, got ${String(err)}`);
    check(err);
    return true;
  };
}

function storeSuite(name: string, open: () => Promise<Backend>): void {
  describe(name, () => {
    let b: Backend;
    before(async () => {
      b = await open();
    });
    after(async () => {
      await b?.close();
    });

    it('round-trips bytes with their sha256 and size', async () => {
      const body = bytesOf('hello, diffem');
      const ref = await b.store.put('rt/hello.txt', body);
      const digest = createHash('sha256').update(body).digest('hex');
      assert.deepEqual(ref, { key: 'rt/hello.txt', sha256: digest, bytes: body.byteLength });
      assert.deepEqual(Buffer.from(await b.store.get('rt/hello.txt')), Buffer.from(body));
      assert.deepEqual(Buffer.from(await b.store.getVerified(ref)), Buffer.from(body));
      assert.deepEqual(await b.store.head('rt/hello.txt'), ref);
      assert.equal(await b.store.exists('rt/hello.txt'), true);

      const empty = await b.store.put('rt/empty', new Uint8Array(0));
      assert.equal(empty.bytes, 0);
      assert.equal(empty.sha256, sha256Hex(new Uint8Array(0)));
      assert.equal((await b.store.getVerified(empty)).byteLength, 0);
    });

    it('overwrites a key with new bytes', async () => {
      await b.store.put('ow/x', bytesOf('first version'));
      const second = await b.store.put('ow/x', bytesOf('second'));
      assert.equal(Buffer.from(await b.store.get('ow/x')).toString(), 'second');
      assert.deepEqual(await b.store.head('ow/x'), second);
      assert.deepEqual(await b.store.list('ow/'), ['ow/x']);
    });

    it('getVerified rejects bytes that changed behind the store', async () => {
      const ref = await b.store.put('cv/weights.bin', bytesOf('abcdefgh'));
      await b.tamper('cv/weights.bin', bytesOf('abcdefgX'));
      await assert.rejects(
        b.store.getVerified(ref),
        isError(ArtifactCorruptError, (e) => {
          assert.equal(e.type, 'ArtifactCorrupt');
          assert.equal(e.key, 'cv/weights.bin');
          assert.match(e.message, /sha256/);
        }),
      );
      await b.tamper('cv/weights.bin', bytesOf('abc'));
      await assert.rejects(
        b.store.getVerified(ref),
        isError(ArtifactCorruptError, (e) => assert.match(e.message, /8 bytes/)),
      );
      // Plain get still returns whatever is there.
      assert.equal(Buffer.from(await b.store.get('cv/weights.bin')).toString(), 'abc');
    });

    it('reports a missing key as ArtifactNotFound', async () => {
      await assert.rejects(
        b.store.get('missing/nothing.bin'),
        isError(ArtifactNotFoundError, (e) => {
          assert.equal(e.type, 'ArtifactNotFound');
          assert.equal(e.key, 'missing/nothing.bin');
          assert.match(e.message, /missing\/nothing\.bin/);
        }),
      );
      await assert.rejects(
        b.store.getVerified({ key: 'missing/nothing.bin', sha256: sha256Hex(new Uint8Array(0)), bytes: 0 }),
        ArtifactNotFoundError,
      );
      assert.equal(await b.store.head('missing/nothing.bin'), null);
      assert.equal(await b.store.exists('missing/nothing.bin'), false);
      await assert.rejects(getJson(b.store, 'missing/step.json'), ArtifactNotFoundError);
    });

    it('rejects invalid keys before any I/O', async () => {
      // The control: a valid key on the unreachable store fails with an I/O error.
      await assert.rejects(b.unreachable.get('fine/key'), (err) => !(err instanceof InvalidKeyError));
      const bad = [
        '../x',
        '/abs',
        'a//b',
        'a\\b',
        'a/../b',
        './a',
        '',
        'a/',
        'x\u0000y',
        'sp ace',
        'é',
        'k'.repeat(1025),
      ];
      for (const key of bad) {
        const check = isError(InvalidKeyError, (e) => {
          assert.equal(e.type, 'InvalidKey');
          assert.equal(e.key, key);
        });
        const s = b.unreachable;
        await assert.rejects(s.put(key, bytesOf('x')), check, `put ${JSON.stringify(key)}`);
        await assert.rejects(s.get(key), check, `get ${JSON.stringify(key)}`);
        await assert.rejects(s.getVerified({ key, sha256: '0'.repeat(64), bytes: 1 }), check);
        await assert.rejects(s.head(key), check);
        await assert.rejects(s.exists(key), check);
        await assert.rejects(s.delete(key), check);
        await assert.rejects(putJson(s, key, {}), check);
      }
      for (const prefix of ['../', '/abs', 'a//', 'a\\', '..']) {
        await assert.rejects(b.unreachable.list(prefix), InvalidKeyError, `list ${prefix}`);
      }
      assert.ok(new InvalidKeyError('../x', 'r').message.includes('"../x"'));
    });

    it('lists keys under a prefix, sorted, without temporary files', async () => {
      for (const key of ['ls/b', 'ls/a/2', 'ls/a10', 'ls/a/1', 'ls/a=3/x', 'lsx/other']) {
        await b.store.put(key, bytesOf(key));
      }
      await b.litter('ls/a/');
      await b.litter('ls/');
      assert.deepEqual(await b.store.list('ls/'), ['ls/a/1', 'ls/a/2', 'ls/a10', 'ls/a=3/x', 'ls/b']);
      assert.deepEqual(await b.store.list('ls/a'), ['ls/a/1', 'ls/a/2', 'ls/a10', 'ls/a=3/x']);
      assert.deepEqual(await b.store.list('ls/a/'), ['ls/a/1', 'ls/a/2']);
      assert.deepEqual(await b.store.list('ls'), ['ls/a/1', 'ls/a/2', 'ls/a10', 'ls/a=3/x', 'ls/b', 'lsx/other']);
      assert.deepEqual(await b.store.list('nothing/here/'), []);
      const all = await b.store.list('');
      assert.deepEqual(all, [...all].sort());
      assert.ok(all.includes('lsx/other'));
      assert.ok(all.every((key) => validateKey(key) === key));
    });

    it('deletes idempotently', async () => {
      await b.store.put('del/a', bytesOf('a'));
      await b.store.put('del/b', bytesOf('b'));
      await b.store.delete('del/a');
      assert.equal(await b.store.exists('del/a'), false);
      await assert.rejects(b.store.get('del/a'), ArtifactNotFoundError);
      assert.deepEqual(await b.store.list('del/'), ['del/b']);
      await b.store.delete('del/a');
      await b.store.delete('del/never-existed');
    });

    it('round-trips a ~5 MB binary payload', async () => {
      const body = new Uint8Array(randomBytes(5 * 1024 * 1024 + 7));
      const ref = await b.store.put('big/payload.bin', body);
      assert.equal(ref.bytes, body.byteLength);
      const back = await b.store.getVerified(ref);
      assert.equal(Buffer.compare(Buffer.from(back), Buffer.from(body)), 0);
      assert.deepEqual(await b.store.head('big/payload.bin'), ref);
    });

    it('stores JSON readably and rejects non-JSON as corrupt', async () => {
      const record = { lap: 3, loss: 0.125, keys: ['a', 'b'], nested: { ok: true } };
      const ref = await putJson(b.store, 'json/step-3.json', record);
      assert.equal(ref.key, 'json/step-3.json');
      assert.deepEqual(await getJson<typeof record>(b.store, 'json/step-3.json'), record);
      assert.match(Buffer.from(await b.store.get('json/step-3.json')).toString(), /^\{\n {2}"lap": 3,[^]*\}\n$/);
      await b.store.put('json/broken.json', bytesOf('{"lap": '));
      await assert.rejects(
        getJson(b.store, 'json/broken.json'),
        isError(ArtifactCorruptError, (e) => assert.equal(e.key, 'json/broken.json')),
      );
    });
  });
}

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `diffem-${label}-`));
}

storeSuite('filesystem store', async () => {
  const dir = await tempDir('fs-store');
  const store = new FsArtifactStore(path.join(dir, 'store'));
  await writeFile(path.join(dir, 'not-a-dir'), 'x');
  return {
    store,
    tamper: (key, bytes) => writeFile(store.pathOf(key), bytes),
    litter: async (prefix) => {
      // What a writer killed between open and rename leaves: a partial temp file.
      await writeFile(path.join(store.root, ...prefix.split('/').filter(Boolean), '.~tmp-0123456789abcdef-x'), 'part');
    },
    unreachable: new FsArtifactStore(path.join(dir, 'not-a-dir', 'store')),
    close: () => rm(dir, { recursive: true, force: true }),
  };
});

storeSuite('S3 store (s3rver)', async () => {
  const fixture = await startS3();
  // Small pages so list exercises ListObjectsV2 continuation.
  const store = new S3ArtifactStore(`s3://${fixture.bucket}/suite`, {
    endpoint: fixture.endpoint,
    credentials: S3_TEST_CREDENTIALS,
    listPageSize: 2,
  });
  const unreachable = new S3ArtifactStore(`s3://${fixture.bucket}/suite`, {
    endpoint: 'http://127.0.0.1:1',
    credentials: S3_TEST_CREDENTIALS,
    maxAttempts: 1,
  });
  return {
    store,
    // Keeps the original sha256 metadata, as silent corruption would: only the bytes change.
    tamper: async (key, bytes) => {
      const current = await fixture.client.send(new HeadObjectCommand({ Bucket: fixture.bucket, Key: `suite/${key}` }));
      await fixture.client.send(
        new PutObjectCommand({ Bucket: fixture.bucket, Key: `suite/${key}`, Body: bytes, Metadata: current.Metadata }),
      );
    },
    // S3 puts are atomic server-side: a killed writer leaves nothing to ignore.
    litter: async () => undefined,
    unreachable,
    close: async () => {
      store.close();
      unreachable.close();
      await fixture.stop();
    },
  };
});

describe('S3 store specifics', () => {
  let fixture: S3Fixture;
  let store: S3ArtifactStore;
  before(async () => {
    fixture = await startS3({ bucket: 'specifics' });
    store = new S3ArtifactStore(`s3://${fixture.bucket}/runs/r1/`, {
      endpoint: fixture.endpoint,
      credentials: S3_TEST_CREDENTIALS,
    });
  });
  after(async () => {
    store?.close();
    await fixture?.stop();
  });

  it('writes under its prefix with sha256 user metadata and sees nothing outside it', async () => {
    assert.equal(store.uri, `s3://specifics/runs/r1`);
    const ref = await store.put('w/model.safetensors', bytesOf('weights'));
    const raw = await fixture.client.send(
      new GetObjectCommand({ Bucket: fixture.bucket, Key: 'runs/r1/w/model.safetensors' }),
    );
    assert.equal(raw.Metadata?.sha256, ref.sha256);
    assert.equal(raw.ContentLength, ref.bytes);
    await raw.Body?.transformToByteArray();
    await fixture.client.send(new PutObjectCommand({ Bucket: fixture.bucket, Key: 'runs/r10/x', Body: bytesOf('x') }));
    await fixture.client.send(new PutObjectCommand({ Bucket: fixture.bucket, Key: 'other/y', Body: bytesOf('y') }));
    assert.deepEqual(await store.list(''), ['w/model.safetensors']);
  });

  it('computes sha256 in head for objects written without metadata', async () => {
    await fixture.client.send(
      new PutObjectCommand({ Bucket: fixture.bucket, Key: 'runs/r1/foreign.bin', Body: bytesOf('from elsewhere') }),
    );
    assert.deepEqual(await store.head('foreign.bin'), {
      key: 'foreign.bin',
      sha256: sha256Hex(bytesOf('from elsewhere')),
      bytes: 14,
    });
  });

  it('fails a missing bucket loudly rather than as a missing artifact', async () => {
    const lost = new S3ArtifactStore('s3://no-such-bucket', {
      endpoint: fixture.endpoint,
      credentials: S3_TEST_CREDENTIALS,
    });
    try {
      await assert.rejects(
        lost.get('x'),
        (err) => !(err instanceof ArtifactNotFoundError) && /no-such-bucket/.test(String(err)),
      );
    } finally {
      lost.close();
    }
  });
});

describe('S3 store on a flaky endpoint', () => {
  let fixture: S3Fixture;
  before(async () => {
    fixture = await startS3({ bucket: 'flaky' });
  });
  after(async () => {
    await fixture?.stop();
  });

  it('survives 503s, dropped connections and cut-off bodies', async () => {
    const proxy = await startFlakyProxy(fixture.endpoint, { failEvery: 3, dropRequests: [5, 14], truncateGets: 2 });
    const store = new S3ArtifactStore(`s3://${fixture.bucket}/lap`, {
      endpoint: proxy.endpoint,
      credentials: S3_TEST_CREDENTIALS,
      maxAttempts: 5,
      listPageSize: 2,
    });
    try {
      const bodies = new Map<string, Uint8Array>();
      for (let i = 0; i < 6; i++) bodies.set(`samples/s${i}.bin`, new Uint8Array(randomBytes(1000 + i * 50_000)));
      bodies.set('weights/big.bin', new Uint8Array(randomBytes(1024 * 1024)));
      const refs = [];
      for (const [key, body] of bodies) refs.push(await store.put(key, body));
      for (const ref of refs) {
        const back = await store.getVerified(ref);
        assert.equal(Buffer.compare(Buffer.from(back), Buffer.from(bodies.get(ref.key) ?? [])), 0);
        assert.deepEqual(await store.head(ref.key), ref);
      }
      assert.deepEqual(await store.list(''), [...bodies.keys()].sort());
      await store.delete('samples/s0.bin');
      assert.equal(await store.exists('samples/s0.bin'), false);
      assert.deepEqual(
        await store.list('samples/'),
        [...bodies.keys()].filter((k) => k.startsWith('samples/s') && k !== 'samples/s0.bin').sort(),
      );

      const injected = proxy.injected();
      assert.ok(proxy.failures() > 0, 'the proxy injected no failures');
      assert.ok(injected.unavailable > 0, 'no 503 was injected');
      assert.equal(injected.dropped, 2);
      assert.equal(injected.truncated, 2);
    } finally {
      store.close();
      await proxy.stop();
    }
  });

  it('gives up with an error naming the key once attempts run out', async () => {
    const proxy = await startFlakyProxy(fixture.endpoint, { failEvery: 1 });
    const store = new S3ArtifactStore(`s3://${fixture.bucket}/lap`, {
      endpoint: proxy.endpoint,
      credentials: S3_TEST_CREDENTIALS,
      maxAttempts: 2,
    });
    try {
      await assert.rejects(store.put('doomed.bin', bytesOf('x')), /doomed\.bin[^]*503/);
      assert.equal(proxy.failures(), 2);
    } finally {
      store.close();
      await proxy.stop();
    }
  });
});

describe('store configuration', () => {
  it('parses s3 URIs', () => {
    assert.deepEqual(parseS3Uri('s3://bucket'), { bucket: 'bucket', prefix: '' });
    assert.deepEqual(parseS3Uri('s3://bucket/'), { bucket: 'bucket', prefix: '' });
    assert.deepEqual(parseS3Uri('s3://my.bucket-1/runs/a=1/'), { bucket: 'my.bucket-1', prefix: 'runs/a=1/' });
    for (const bad of ['s3://', 's3:///x', 's3://b/../x', 's3://b/a//c', 's3://b?x=1', 'http://b/x', 's3://b/sp ace']) {
      assert.throws(
        () => parseS3Uri(bad),
        (err: unknown) => err instanceof Error && err.message.includes(bad),
        bad,
      );
    }
  });

  it('configures the S3 client from options and environment', () => {
    const plain = s3ClientConfig({ env: {} });
    assert.equal(plain.region, 'us-east-1');
    assert.equal(plain.endpoint, undefined);
    assert.equal(plain.forcePathStyle, undefined);
    assert.equal(plain.maxAttempts, 5);
    assert.equal(plain.credentials, undefined);

    const fromEnv = s3ClientConfig({
      env: {
        AWS_ENDPOINT_URL: 'http://generic:1',
        AWS_ENDPOINT_URL_S3: 'http://s3-specific:2',
        AWS_REGION: 'eu-west-3',
      },
    });
    assert.equal(fromEnv.endpoint, 'http://s3-specific:2');
    assert.equal(fromEnv.forcePathStyle, true);
    assert.equal(fromEnv.region, 'eu-west-3');
    assert.equal(
      s3ClientConfig({ env: { DIFFEM_S3_ENDPOINT: 'http://ours:3', AWS_ENDPOINT_URL_S3: 'http://s3:2' } }).endpoint,
      'http://ours:3',
    );
    assert.equal(
      s3ClientConfig({ endpoint: 'http://opt:4', env: { DIFFEM_S3_ENDPOINT: 'http://ours:3' } }).endpoint,
      'http://opt:4',
    );
    assert.equal(s3ClientConfig({ env: { AWS_DEFAULT_REGION: 'ap-south-1' } }).region, 'ap-south-1');
    assert.equal(s3ClientConfig({ maxAttempts: 9, env: {} }).maxAttempts, 9);
    assert.throws(() => s3ClientConfig({ endpoint: 'not a url', env: {} }), /not a url/);
  });

  it('opens stores from URIs and paths', () => {
    const cwd = '/srv/diffem';
    const rel = openStore('.diffem', { cwd });
    assert.ok(rel instanceof FsArtifactStore);
    assert.equal(rel.uri, pathToFileURL('/srv/diffem/.diffem').href);
    assert.equal(openStore('/abs/store').uri, 'file:///abs/store');
    assert.equal(openStore('file:///abs/store').uri, 'file:///abs/store');
    const s3store = openStore('s3://bucket/pre/fix', { endpoint: 'http://127.0.0.1:1', env: {} });
    assert.ok(s3store instanceof S3ArtifactStore);
    assert.equal(s3store.uri, 's3://bucket/pre/fix');
    s3store.close();
    for (const bad of ['', 'gs://bucket/x', 'file://remote-host/x', 's3://', 'http://example.com/store']) {
      assert.throws(
        () => openStore(bad),
        (err: unknown) => err instanceof Error && err.message.includes(JSON.stringify(bad).slice(1, -1)),
        bad,
      );
    }
  });
});

describe('filesystem store under SIGKILL', () => {
  const SIZE = 4 * 1024 * 1024;
  const ROUNDS = 8;
  // Rewrites one key forever with uniform payloads whose fill byte changes every put.
  const WRITER = `
    const { FsArtifactStore } = await import(process.argv[1]);
    const store = new FsArtifactStore(process.argv[2]);
    const size = Number(process.argv[3]);
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) {
      await store.put('lap/weights.bin', new Uint8Array(size).fill((i % 250) + 1));
      process.stdout.write('put\\n');
    }
  `;
  let dir: string;
  before(async () => {
    dir = await tempDir('fs-kill');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves no file or a complete one, never a torn one', async (t) => {
    const moduleUrl = new URL('../store/fs.js', import.meta.url).href;
    const store = new FsArtifactStore(dir);
    const digests = new Map<number, string>();
    let killedMidWrite = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, moduleUrl, dir, String(SIZE)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = once(child, 'exit');
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // The first round kills only after a put has completed, so that however slow the disk
      // (or loaded the machine) there is a whole file whose survival the later kills test.
      const awaited = round === 0 ? 'put' : 'ready';
      while (!output.includes(awaited)) await once(child.stdout, 'data');
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 60));
      child.kill('SIGKILL');
      const [, signal] = (await exited) as [number | null, string | null];
      assert.equal(signal, 'SIGKILL');

      const entries = await readdir(path.join(dir, 'lap')).catch(() => [] as string[]);
      if (entries.some((name) => name.includes('~tmp'))) killedMidWrite++;
      if (!entries.includes('weights.bin')) continue;
      const bytes = new Uint8Array(await readFile(path.join(dir, 'lap', 'weights.bin')));
      assert.equal(bytes.byteLength, SIZE, `round ${round}: torn file of ${bytes.byteLength} bytes`);
      const fill = bytes[0];
      if (!digests.has(fill)) digests.set(fill, sha256Hex(new Uint8Array(SIZE).fill(fill)));
      assert.equal(sha256Hex(bytes), digests.get(fill), `round ${round}: content is not one whole put`);
      assert.deepEqual(await store.list(''), ['lap/weights.bin']);
      assert.deepEqual(await store.head('lap/weights.bin'), {
        key: 'lap/weights.bin',
        sha256: digests.get(fill),
        bytes: SIZE,
      });
    }
    t.diagnostic(`${killedMidWrite} of ${ROUNDS} kills left a partial temp file behind`);
    assert.ok(await store.exists('lap/weights.bin'), 'no put ever completed; the test proved nothing');
    await store.sweepTemporaries(0);
    assert.deepEqual(await readdir(path.join(dir, 'lap')), ['weights.bin']);
  });
});
