export function serve(ready: unknown, handlers: Record<string, (arg: unknown) => unknown>, stop: () => Promise<void>): void;
