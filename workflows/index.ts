/**
 * The workflows a Temporal worker registers (`workflowsPath` points at the compiled form of
 * this file). Only deterministic code may be reachable from here: the bundler rejects Node
 * built-ins, and the tests bundle this entry to catch such imports before a deployment does.
 */
export { diffemCampaign } from './temporal.js';
