/**
 * The grid's table as text (what `headlens grid` prints), as CSV (RFC 4180: quoted where needed,
 * CRLF) and as JSON (the GridTable itself). Columns: val loss (± the seed-to-seed standard
 * deviation with several seeds), bits per byte, tokens/s, parameters, wall time, Δ vs the baseline;
 * a `*` marks each wave's winner.
 */
import type { GridRow, GridTable } from '../protocol';

const num = (v: number | null, digits: number): string => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(digits));
const signed = (v: number | null, digits: number): string => (v === null ? '—' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}`);
const withSpread = (v: string, std: number | null, digits: number): string => (std === null ? v : `${v} ±${std.toFixed(digits)}`);

function compact(n: number | null): string {
  if (n === null) return '—';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

const COLUMNS: { title: string; cell: (r: GridRow) => string; right?: boolean }[] = [
  { title: 'id', cell: (r) => `${r.winner ? '*' : ' '}${r.id}` },
  { title: 'change', cell: (r) => (r.change.length > 44 ? `${r.change.slice(0, 43)}…` : r.change) },
  { title: 'wave', cell: (r) => `${r.wave}${r.priority === 'low' ? ' (low)' : ''}` },
  { title: 'from', cell: (r) => r.from ?? '' },
  { title: 'val loss', cell: (r) => withSpread(num(r.valLoss, 4), r.valLossStd, 4), right: true },
  { title: 'bpb', cell: (r) => num(r.bpb, 4), right: true },
  { title: 'tok/s', cell: (r) => compact(r.tokPerS), right: true },
  { title: 'params', cell: (r) => compact(r.params), right: true },
  { title: 'wall s', cell: (r) => num(r.wallS, 1), right: true },
  { title: 'Δ vs baseline', cell: (r) => withSpread(signed(r.delta, 4), r.deltaStd, 4), right: true },
  { title: 'status', cell: (r) => `${r.status}${r.seeds > 1 ? ` ${r.seedsDone}/${r.seeds}` : ''}${r.note ? `: ${r.note}` : ''}` },
];

export function formatGridTable(table: GridTable): string {
  const cells = table.rows.map((r) => COLUMNS.map((c) => c.cell(r)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : COLUMNS[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [`${table.name}`, line(COLUMNS.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  for (const w of table.waves) out.push(`wave ${w.wave} from ${w.from}: ${w.winner ? `winner ${w.winner}` : 'no winner'} (${w.reason})`);
  for (const n of table.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

const CSV_HEADER = ['id', 'change', 'wave', 'priority', 'from', 'status', 'seeds_done', 'seeds', 'val_loss', 'val_loss_std', 'bpb', 'tok_per_s', 'params', 'wall_s', 'delta_vs_baseline', 'delta_std', 'winner', 'changes', 'checkpoints', 'note'];

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function gridCsv(table: GridTable): string {
  const rows = table.rows.map((r) => [r.id, r.change, r.wave, r.priority, r.from, r.status, r.seedsDone, r.seeds, r.valLoss, r.valLossStd, r.bpb, r.tokPerS, r.params, r.wallS, r.delta, r.deltaStd, r.winner, r.changes, r.checkpoints.join(';'), r.note]);
  return [CSV_HEADER, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
