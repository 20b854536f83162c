/** The image domain: masked or blurred images, the U-Net, PSNR/SSIM/FID and the image grids. */
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { Domain } from '../domain.js';
import { prepareImageData, shardImageDataset } from './data.js';
import { evaluateImages } from './evaluate.js';
import { initializeImageGaussian } from './gaussian.js';
import { renderImageFigures } from './records.js';
import { drawPosteriorImages, drawPriorImages, posteriorSampleImage, priorMetricsImages } from './sample.js';
import { observationsOf } from './common.js';
import { concatOperators } from '../../models/channels/image-operators.js';
import { repeatRows } from '../io.js';
import { trainImageDenoiser } from './train.js';

export function imageDomain(config: ImageCampaignConfig): Domain {
  return {
    prepareData: (input) => prepareImageData(config, input),
    shardDataset: (input) => shardImageDataset(config, input),
    initializeGaussian: (input) => initializeImageGaussian(config, input),
    train: (input, role) => trainImageDenoiser(config, input, role),
    posteriorSample: (input) => posteriorSampleImage(config, input),
    evaluate: (input) => evaluateImages(config, input),
    priorMetrics: (store, x, input, rng) => priorMetricsImages(store, config, x, input, rng),
    renderFigures: (input) => renderImageFigures(config, input),
    images: true,
    drawPrior: (store, model, count, rng, onStep) => drawPriorImages(store, config, model, count, rng, onStep),
    drawPosteriors: async (store, model, file, k, rng, onStep) => {
      const observed = observationsOf(config, file.tensors, file.source);
      const repeated = {
        y: repeatRows(observed.y, k),
        ops: k === 1 ? observed.ops : concatOperators(Array.from({ length: k }, () => observed.ops)),
      };
      return {
        samples: await drawPosteriorImages(store, config, model, repeated, rng, onStep, 'reconstructions'),
        observed,
      };
    },
  };
}
