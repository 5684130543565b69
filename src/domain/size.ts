/** Byte sizes as people write them in config ("10MB", "512KB") and as we show them. */

const UNIT_BYTES: Readonly<Record<string, number>> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Parses "10MB", "512 KB", "1GB", "2048" (bytes); returns null when it is not a size. */
export function parseSize(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) return null;
  const unit = (match[2] ?? 'B').toUpperCase().replace('IB', 'B');
  const factor = UNIT_BYTES[unit];
  return factor === undefined ? null : Math.round(Number(match[1]) * factor);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
