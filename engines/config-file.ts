/**
 * The one way a campaign config is read from disk or text, for `run`, `compare`, schedules
 * and the Temporal client alike: YAML (JSON is YAML) validated by `workflows/config.ts`.
 * An unreadable file or bad YAML is a ConfigFileError naming the file; a bad field is the
 * schema's ConfigError naming the field.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import { checkConfigLimits } from './config-limits.js';

export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
}

export function parseConfigText(text: string, source: string): CampaignConfig {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ConfigFileError(
      `config file ${source} is not valid YAML: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return checkConfigLimits(parseCampaignConfig(document, source), source);
}

export async function loadConfigFile(path: string): Promise<CampaignConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(
      `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  return parseConfigText(text, path);
}
