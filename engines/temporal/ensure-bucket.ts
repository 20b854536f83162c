/**
 * Creates the S3 bucket of a store URI when it does not exist yet: the one-off setup step of a
 * deployment (k8s bucket Job, compose `store-setup`), run with the workers' own image and
 * environment (DIFFEM_S3_ENDPOINT, AWS_*), so that it reaches the store exactly as they will.
 *
 *   node dist/engines/temporal/ensure-bucket.js s3://diffem/runs
 *
 * Idempotent: an existing bucket owned by these credentials is success. Any other failure
 * (bad URI, unreachable endpoint, refused credentials) exits non-zero with the reason.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { parseS3Uri, s3ClientConfig, type S3StoreOptions } from '../../store/s3.js';

export type BucketOutcome = 'created' | 'exists';

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : '';
}

export async function ensureBucket(uri: string, options: S3StoreOptions = {}): Promise<BucketOutcome> {
  const { bucket } = parseS3Uri(uri);
  const client = new S3Client(s3ClientConfig({ ...options, maxAttempts: options.maxAttempts ?? 3 }));
  try {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
      return 'exists';
    } catch (error) {
      if (errorName(error) !== 'NotFound' && errorName(error) !== 'NoSuchBucket') throw error;
    }
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return 'created';
    } catch (error) {
      // Another setup run won the race.
      if (errorName(error) === 'BucketAlreadyOwnedByYou') return 'exists';
      throw error;
    }
  } catch (error) {
    const endpoint = s3ClientConfig(options).endpoint;
    throw new Error(
      `cannot create or find bucket '${bucket}' (${uri}) at ${endpoint === undefined ? 'AWS S3' : String(endpoint)}: ` +
        `${errorName(error) || 'error'}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv.length !== 1) {
    process.stderr.write('usage: ensure-bucket s3://BUCKET[/PREFIX]\n');
    return 2;
  }
  try {
    const outcome = await ensureBucket(argv[0]);
    process.stdout.write(`bucket of ${argv[0]}: ${outcome}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`ensure-bucket: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

const invokedAs = process.argv[1] === undefined ? '' : realpathSync(process.argv[1]);
if (invokedAs === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
