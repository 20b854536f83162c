/**
 * Entry point of the s3rver child process started by `startS3` (helpers/s3.ts):
 * `node --openssl-legacy-provider s3rver-process.js <data dir>`.
 *
 * s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
 * through its legacy provider (jamhall/s3rver#818), so paged listings need a process of
 * its own started with that flag. Prints `{"port": N}` once listening; exits when its
 * stdin closes, so it never outlives the test process that started it.
 */
import S3rver from 's3rver';

const directory = process.argv[2];
if (!directory) {
  process.stderr.write('usage: s3rver-process.js <data directory>\n');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.stdin.resume();
process.stdin.on('close', () => process.exit(0));
