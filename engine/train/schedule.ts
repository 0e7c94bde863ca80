/**
 * a-gpt's learning-rate schedule (utils/train_utils.py get_cosine_lr): linear warmup over
 * `warmup` steps to `baseLr`, then cosine decay to `minLr` at `maxSteps`.
 */
export function cosineLr(step: number, maxSteps: number, warmup: number, baseLr: number, minLr: number): number {
  if (warmup > 0 && step < warmup) return (baseLr * (step + 1)) / warmup;
  if (maxSteps <= warmup) return baseLr;
  const progress = Math.max(0, Math.min(1, (step - warmup) / (maxSteps - warmup)));
  return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * progress));
}
