/**
 * PonderTTT's update/skip gate in double precision, as deveworld/ponderTTT's code has it (commit
 * d77657d) where the paper differs (shared/research/methods.md §2.3, §2.5):
 *   - `ReconstructionGating` (gating/reconstruction.py): while fewer than calibration_batches·8
 *     signals are seen, UPDATE; at that count τ = sorted(s)[min(⌊(1−ρ)·n⌋, n−1)], ema_loss = mean,
 *     ema_rate = ρ. Then UPDATE iff s > τ (strict). After every chunk (the calibrating one that
 *     completes the count included) ema_loss ← (1−α)·ema_loss + α·s, ema_rate ← (1−α)·ema_rate + α·d
 *     and τ ← max(0.01, τ + (ema_rate − ρ)·α·max(0.1, |τ|)) with the post-decision ema_rate;
 *   - `budget_to_update_rate` and `get_ttt_loss_from_stats` (experiments/compare_methods.py:98-101,
 *     179-192) and the decide / update_state loop of its lines 258-278.
 * The arithmetic keeps their operand order ((1 − α) computed, not written as 0.9) so that every
 * value equals theirs to the last bit.
 */

export type GateMode = 'adaptive' | 'threshold';

export interface GateOptions {
  mode?: GateMode;
  /** The fixed τ of mode 'threshold' (their default 0.5). */
  threshold?: number;
  /** ρ: the share of chunks to update (their default 0.5 = budget 2.0). */
  targetRate?: number;
  /** α of both EMAs and of the τ step (0.1). */
  emaAlpha?: number;
  /** Calibration lasts calibrationBatches·8 chunks (2 → 16). */
  calibrationBatches?: number;
}

export interface GateDecision {
  update: boolean;
  phase: 'calibration' | 'adaptive';
  /** τ the signal was compared with; null while calibrating. */
  threshold: number | null;
}

export class ReconstructionGate {
  readonly mode: GateMode;
  readonly targetRate: number;
  readonly emaAlpha: number;
  readonly calibrationBatches: number;
  private readonly fixedThreshold: number;
  private tau: number | null;
  private emaLossValue: number | null = null;
  private emaRateValue: number | null = null;
  private readonly calibrationLosses: number[] = [];
  private isCalibrated: boolean;

  constructor(o: GateOptions = {}) {
    this.mode = o.mode ?? 'adaptive';
    this.fixedThreshold = o.threshold ?? 0.5;
    this.targetRate = o.targetRate ?? 0.5;
    this.emaAlpha = o.emaAlpha ?? 0.1;
    this.calibrationBatches = o.calibrationBatches ?? 2;
    this.tau = this.mode === 'threshold' ? this.fixedThreshold : null;
    this.isCalibrated = this.mode === 'threshold';
  }

  get threshold(): number | null {
    return this.tau;
  }
  get emaRate(): number | null {
    return this.emaRateValue;
  }
  get emaLoss(): number | null {
    return this.emaLossValue;
  }
  get calibrated(): boolean {
    return this.isCalibrated;
  }
  /** Chunks the calibration takes ("~8 chunks per batch" in their code). */
  get calibrationChunks(): number {
    return this.calibrationBatches * 8;
  }

  /** `decide(ttt_loss_init=signal)`. */
  decide(signal: number): GateDecision {
    if (this.mode === 'adaptive' && !this.isCalibrated) {
      this.calibrationLosses.push(signal);
      if (this.calibrationLosses.length >= this.calibrationChunks) this.calibrate();
      return { update: true, phase: 'calibration', threshold: null };
    }
    if (this.tau === null) this.tau = this.fixedThreshold;
    return { update: signal > this.tau, phase: 'adaptive', threshold: this.tau };
  }

  private calibrate(): void {
    const sorted = [...this.calibrationLosses].sort((a, b) => a - b);
    const idx = Math.trunc((1 - this.targetRate) * sorted.length);
    this.tau = sorted[Math.min(idx, sorted.length - 1)];
    this.emaLossValue = sum(this.calibrationLosses) / this.calibrationLosses.length;
    this.emaRateValue = this.targetRate;
    this.isCalibrated = true;
  }

  /** `update_state({ttt_loss_init: signal, was_update})`. */
  updateState(signal: number, wasUpdate: boolean): void {
    if (this.mode !== 'adaptive' || !this.isCalibrated) return;
    const a = this.emaAlpha;
    if (this.emaLossValue !== null) this.emaLossValue = (1 - a) * this.emaLossValue + a * signal;
    if (this.emaRateValue === null) return;
    this.emaRateValue = (1 - a) * this.emaRateValue + a * (wasUpdate ? 1 : 0);
    if (this.tau !== null) {
      const rateError = this.emaRateValue - this.targetRate;
      const adjustment = rateError * a * Math.max(0.1, Math.abs(this.tau));
      this.tau = Math.max(0.01, this.tau + adjustment);
    }
  }
}

/** Python's sum(list): left to right from 0. */
function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** `budget_to_update_rate`: ρ = clip((budget − 1)/2, 0, 1) (UPDATE costs 3× a SKIP). */
export function budgetToUpdateRate(budget: number): number {
  const rate = (budget - 1.0) / 2.0;
  return Math.min(Math.max(rate, 0.0), 1.0);
}

/**
 * `get_ttt_loss_from_stats`: (signal, final) = the means over mini-batches of ttt_loss_step_0 and
 * ttt_loss_step_1 (each already the mean over batch and heads), as float32 means (their arrays are
 * float32 and `float(x.mean())` converts a float32 scalar).
 */
export function tttLossFromStats(step0: ArrayLike<number>, step1: ArrayLike<number>): { signal: number; final: number } {
  return { signal: float32Mean(step0), final: float32Mean(step1) };
}

function float32Mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return Math.fround(Math.fround(s) / xs.length);
}

/** One chunk of a gate run, in the fixture's record fields. */
export interface GateRecord {
  chunk: number;
  signal: number;
  phase: 'calibration' | 'adaptive';
  decision: 'UPDATE' | 'SKIP';
  /** τ in the comparison (null while calibrating); margin = signal − τ. */
  threshold_used: number | null;
  margin: number | null;
  threshold_after: number | null;
  ema_rate_after: number | null;
  ema_loss_after: number | null;
  calibrated_after: boolean;
}

/** The compare_methods loop over a stream of signals: decide, then update_state with the decision. */
export function runGate(signals: ArrayLike<number>, opts: GateOptions = {}): GateRecord[] {
  const gate = new ReconstructionGate(opts);
  const out: GateRecord[] = [];
  for (let i = 0; i < signals.length; i++) {
    const s = signals[i];
    const d = gate.decide(s);
    gate.updateState(s, d.update);
    out.push({
      chunk: i, signal: s, phase: d.phase, decision: d.update ? 'UPDATE' : 'SKIP',
      threshold_used: d.threshold, margin: d.threshold === null ? null : s - d.threshold,
      threshold_after: gate.threshold, ema_rate_after: gate.emaRate, ema_loss_after: gate.emaLoss, calibrated_after: gate.calibrated,
    });
  }
  return out;
}
