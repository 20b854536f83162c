/**
 * How every artifact is named in records and activity payloads: its key in the store, its
 * sha256 and its size. A reader checks the bytes it gets against both (`getVerified`), so a
 * record is an audit trail, not just a pointer. Pure type: the workflow sandbox imports it.
 */
export interface ArtifactRef {
  key: string;
  sha256: string;
  bytes: number;
}
