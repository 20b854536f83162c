/** Progress callback shared by the samplers: `done` of `total` steps finished. */
export type SamplerProgress = (done: number, total: number) => void;
