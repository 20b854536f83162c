/**
 * A dataset file (CIFAR-10 batch, tar or tar.gz archive, image in a folder) that cannot be
 * read as what it claims to be. Typed so callers can tell hostile or damaged input, which
 * no retry will fix, from a transient I/O failure; `source` names the file.
 */
export class DatasetFileError extends Error {
  readonly type = 'DatasetFileInvalid' as const;
  override readonly name = 'DatasetFileError';
  constructor(
    readonly source: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
