import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/domain/duration.js';

describe('parseDuration', () => {
  it('reads each unit', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
  });

  it('adds up combined parts and decimals', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1d2h3m4s5ms')).toBe(86_400_000 + 7_200_000 + 180_000 + 4_000 + 5);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('0.25h')).toBe(900_000);
    expect(parseDuration('0s')).toBe(0);
  });

  it('tells ms from m followed by s', () => {
    expect(parseDuration('1ms')).toBe(1);
    expect(parseDuration('1m1ms')).toBe(60_001);
    expect(parseDuration('10m5s')).toBe(605_000);
  });

  it('ignores surrounding whitespace', () => {
    expect(parseDuration('  15m\n')).toBe(900_000);
  });

  it('returns null for anything that is not a duration', () => {
    for (const text of [
      '',
      ' ',
      '15',
      '15 minutes',
      '15 m',
      '1h 30m',
      'm',
      '15M',
      '15min',
      '-5m',
      '+5m',
      '1.5.5s',
      '.5s',
      '5sm',
      'ms',
      '1e3ms',
      '1h30',
      'PT15M',
    ]) {
      expect(parseDuration(text), JSON.stringify(text)).toBeNull();
    }
  });
});

describe('formatDuration', () => {
  it('shows milliseconds under a second', () => {
    expect(formatDuration(0)).toBe('0ms');
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(999)).toBe('999ms');
    expect(formatDuration(12.4)).toBe('12ms');
    expect(formatDuration(-5)).toBe('0ms');
  });

  it('shows seconds with one decimal under a minute', () => {
    expect(formatDuration(1_000)).toBe('1.0s');
    expect(formatDuration(3_249)).toBe('3.2s');
    expect(formatDuration(4_321)).toBe('4.3s');
    expect(formatDuration(59_000)).toBe('59.0s');
  });

  it('shows minutes and zero-padded seconds under an hour', () => {
    expect(formatDuration(60_000)).toBe('1m 00s');
    expect(formatDuration(245_000)).toBe('4m 05s');
    expect(formatDuration(245_400)).toBe('4m 05s');
    expect(formatDuration(245_600)).toBe('4m 06s');
    expect(formatDuration(3_599_000)).toBe('59m 59s');
  });

  it('shows hours and zero-padded minutes from an hour', () => {
    expect(formatDuration(3_600_000)).toBe('1h 00m');
    expect(formatDuration(3_599_600)).toBe('1h 00m');
    expect(formatDuration(7_380_000)).toBe('2h 03m');
    expect(formatDuration(123_456_789)).toBe('34h 17m');
  });

  it('agrees with parseDuration on whole units', () => {
    expect(formatDuration(parseDuration('15m')!)).toBe('15m 00s');
    expect(formatDuration(parseDuration('1h30m')!)).toBe('1h 30m');
    expect(formatDuration(parseDuration('90s')!)).toBe('1m 30s');
    expect(formatDuration(parseDuration('500ms')!)).toBe('500ms');
  });
});
