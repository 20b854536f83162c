/** The vector domain: the manifold experiment's data, lap 0, networks, samplers, metrics and figure. */
import type { VectorCampaignConfig } from '../../workflows/config.js';
import type { Domain } from '../domain.js';
import { repeatRows } from '../io.js';
import { observationsOfFile, prepareVectorData, shardVectorDataset, simulateObservations } from './data.js';
import { evaluateVector } from './evaluate.js';
import { renderVectorFigures } from './figures.js';
import { initializeVectorGaussian } from './gaussian.js';
import { drawPosteriorVector, drawPriorVector, posteriorSampleVector } from './sample.js';
import { manifoldMetrics } from './evaluate.js';
import { trainVectorDenoiser } from './train.js';

export function vectorDomain(config: VectorCampaignConfig): Domain {
  return {
    prepareData: (input) => prepareVectorData(config, input),
    shardDataset: (input) => shardVectorDataset(config, input),
    initializeGaussian: (input) => initializeVectorGaussian(config, input),
    train: (input, role) => trainVectorDenoiser(config, input, role),
    posteriorSample: (input) => posteriorSampleVector(config, input),
    evaluate: (input) => evaluateVector(config, input),
    priorMetrics: (store, x, input, rng) => manifoldMetrics(store, config, x, input.clean, input.truth, rng),
    renderFigures: (input) => renderVectorFigures(config, input),
    images: false,
    simulateObservations: (part, count) => simulateObservations(config, part, count),
    drawPrior: (store, model, count, rng, onStep) => drawPriorVector(store, config, model, count, rng, onStep),
    drawPosteriors: async (store, model, file, k, rng, onStep) => {
      const { y, A } = observationsOfFile(config, file.tensors, file.source);
      return {
        samples: await drawPosteriorVector(store, config, model, repeatRows(y, k), repeatRows(A, k), rng, onStep),
      };
    },
  };
}
