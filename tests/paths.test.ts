/**
 * Campaign ids, artifact keys and --out paths cannot leave the store or the directory they
 * name: '..', absolute paths, NUL bytes, over-long names and symbolic links planted in the
 * store are refused with an error naming them, and nothing outside is read or written. The
 * CLI is run for real against a store holding a link to a directory outside it.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { FsArtifactStore, StoreSymlinkError } from '../store/fs.js';
import { InvalidKeyError, putJson } from '../store/store.js';
import { readManifest, validateCampaignId } from '../engines/records.js';
import { campaignKeys } from '../workflows/keys.js';
import { OutPathError, writeOutFile } from '../cli/out-file.js';
import { runCli } from './helpers/cli.js';

let dir: string;
let outside: string;

/** Every file under `root` with its bytes, to show that nothing there changed. */
async function snapshot(root: string): Promise<string> {
  const entries = (await readdir(root, { recursive: true })).sort();
  const lines: string[] = [];
  for (const entry of entries) {
    const info = await lstat(path.join(root, entry));
    lines.push(
      `${entry} ${info.isFile() ? await readFile(path.join(root, entry), 'utf8') : info.isSymbolicLink() ? 'link' : 'dir'}`,
    );
  }
  return lines.join('\n');
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-paths-'));
  outside = path.join(dir, 'outside');
  await mkdir(outside);
  // What an escaping key would find: a plausible campaign, and a file to overwrite.
  await writeFile(
    path.join(outside, 'campaign.json'),
    JSON.stringify({
      campaignId: 'evil',
      engine: 'local',
      config: { seed: 1, em: { laps: 1 } },
      configDigest: 'x',
      createdAt: 'then',
    }),
  );
  await writeFile(path.join(outside, 'victim.txt'), 'untouched');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('artifact keys', () => {
  const hostile = [
    '../outside/victim.txt',
    'campaigns/../../outside/victim.txt',
    '/etc/passwd',
    `${'x'.repeat(10)}\0/victim.txt`,
    'a\\..\\victim.txt',
    'campaigns/./c',
    `campaigns/${'n'.repeat(256)}`,
    'k/'.repeat(600) + 'x',
    '',
  ];

  for (const op of ['put', 'get', 'head', 'exists', 'delete'] as const) {
    test(`${op} refuses keys that could leave the store, before any I/O`, async () => {
      const store = new FsArtifactStore(path.join(dir, `keys-${op}`));
      const before = await snapshot(outside);
      for (const key of hostile) {
        const call =
          op === 'put'
            ? store.put(key, new TextEncoder().encode('pwned'))
            : (store[op] as (k: string) => Promise<unknown>)(key);
        await assert.rejects(call, InvalidKeyError, `${op} ${JSON.stringify(key.slice(0, 40))}`);
      }
      assert.equal(await snapshot(outside), before);
    });
  }
});

describe('campaign ids', () => {
  test('ids that are paths, hold NUL or are too long are refused with the id quoted', async () => {
    for (const id of ['..', '../outside', '/abs', 'a/b', 'nul\0byte', 'x'.repeat(129), '', '.hidden']) {
      assert.throws(() => validateCampaignId(id), /campaign id .* is invalid/);
      const store = new FsArtifactStore(path.join(dir, 'ids'));
      await assert.rejects(readManifest(store, id), /campaign id .* is invalid/);
    }
    assert.equal(validateCampaignId('x'.repeat(128)), 'x'.repeat(128));
  });

  test('`diffem run --id ../outside` stops before writing anything', async () => {
    const store = path.join(dir, 'run-id-store');
    const config = path.join(dir, 'tiny.yaml');
    await writeFile(config, await readFile(new URL('../../examples/manifold-tiny.yaml', import.meta.url), 'utf8'));
    const before = await snapshot(outside);
    const result = await runCli(['run', config, '--store', store, '--id', '../outside']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /campaign id "\.\.\/outside" is invalid/);
    assert.equal(await snapshot(outside), before);
    await assert.rejects(lstat(path.join(store, 'campaigns')), { code: 'ENOENT' });
  });
});

describe('symbolic links in the store', () => {
  let store: string;
  before(async () => {
    store = path.join(dir, 'linked-store');
    await mkdir(path.join(store, 'campaigns', 'c'), { recursive: true });
    // A campaign directory that is a link out of the store, and a record that is one.
    await symlink(outside, path.join(store, 'campaigns', 'evil'));
    await symlink(path.join(outside, 'victim.txt'), path.join(store, 'campaigns', 'c', 'status.json'));
  });

  test('no store operation follows a link in the key path', async () => {
    const fs = new FsArtifactStore(store);
    const before = await snapshot(outside);
    await assert.rejects(fs.get('campaigns/evil/campaign.json'), StoreSymlinkError);
    await assert.rejects(fs.head('campaigns/evil/campaign.json'), StoreSymlinkError);
    await assert.rejects(fs.exists('campaigns/evil/campaign.json'), StoreSymlinkError);
    await assert.rejects(fs.put('campaigns/evil/victim.txt', new TextEncoder().encode('pwned')), StoreSymlinkError);
    await assert.rejects(fs.delete('campaigns/evil/victim.txt'), StoreSymlinkError);
    await assert.rejects(putJson(fs, campaignKeys.status('c'), { status: 'done' }), StoreSymlinkError);
    await assert.rejects(fs.get(campaignKeys.status('c')), /campaigns\/c\/status\.json is a symbolic link/);
    assert.deepEqual(await fs.list('campaigns/'), []);
    assert.equal(await snapshot(outside), before);
  });

  test('the CLI refuses a campaign reached through a link, and writes nothing outside', async () => {
    const before = await snapshot(outside);
    const history = await runCli(['history', 'evil', '--store', store]);
    assert.equal(history.code, 1);
    assert.match(history.stderr, /campaigns\/evil is a symbolic link, and the store never follows links/);
    const status = await runCli(['status', 'evil', '--store', store, '--json']);
    assert.notEqual(status.code, 0);
    assert.doesNotMatch(status.stdout, /evil/);
    const report = await runCli(['report', 'evil', '--store', store, '--out', path.join(dir, 'r.html')]);
    assert.notEqual(report.code, 0);
    assert.match(report.stderr, /symbolic link/);
    const resume = await runCli(['resume', 'c', '--store', store]);
    assert.notEqual(resume.code, 0);
    assert.equal(await snapshot(outside), before);
  });
});

describe('--out paths', () => {
  test('a link at the --out path is replaced, not written through', async () => {
    const target = path.join(dir, 'report.html');
    await symlink(path.join(outside, 'victim.txt'), target);
    await writeOutFile(target, '<html>report</html>');
    assert.equal(await readFile(path.join(outside, 'victim.txt'), 'utf8'), 'untouched');
    assert.ok((await lstat(target)).isFile());
    assert.equal(await readFile(target, 'utf8'), '<html>report</html>');
  });

  test('NUL bytes, over-long names, missing directories and directories are refused by name', async () => {
    await assert.rejects(writeOutFile(`${dir}/a\0b.html`, 'x'), OutPathError);
    await assert.rejects(writeOutFile(path.join(dir, `${'n'.repeat(300)}.html`), 'x'), /longer than 255 bytes/);
    await assert.rejects(writeOutFile(path.join(dir, 'no-such-dir', 'r.html'), 'x'), /does not exist/);
    await assert.rejects(writeOutFile(outside, 'x'), /is a directory/);
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.endsWith('.tmp')),
      [],
    );
  });
});
