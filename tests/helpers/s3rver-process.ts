/**
 * Entry point of the s3rver child process started by `startS3` (helpers/s3.ts):
 * `node --openssl-legacy-provider s3rver-process.js <data dir> [key pairs JSON]`.
 *
 * s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
 * through its legacy provider (jamhall/s3rver#818), so paged listings need a process of
 * its own started with that flag. Prints `{"port": N}` once listening; exits when its
 * stdin closes, so it never outlives the test process that started it.
 */
import { createRequire } from 'node:module';
import S3rver from 's3rver';

const directory = process.argv[2];
if (!directory) {
  process.stderr.write('usage: s3rver-process.js <data directory>\n');
  process.exit(2);
}
// Extra access key pairs (a JSON array as the second argument), so a test can use credentials
// of its own and look for them afterwards; s3rver itself only knows S3RVER/S3RVER.
if (process.argv[3]) {
  const { DUMMY_ACCOUNT } = createRequire(import.meta.url)('s3rver/lib/models/account') as {
    DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
  };
  for (const pair of JSON.parse(process.argv[3]) as Array<{ accessKeyId: string; secretAccessKey: string }>) {
    DUMMY_ACCOUNT.createKeyPair(pair.accessKeyId, pair.secretAccessKey);
  }
}
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
