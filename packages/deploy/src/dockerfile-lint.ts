import { DockerfileParser, type Copy } from 'dockerfile-ast';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';

/**
 * Lints the services' Dockerfile without a Docker engine (decision 0032): dockerfile-utils (the
 * validator behind VS Code's Dockerfile support: syntax, instruction arguments, duplicate stage
 * names, casing, relative WORKDIR, several CMD/ENTRYPOINT per stage), every check raised to an
 * error, then the rules this project holds its images to, on dockerfile-ast's parse:
 *   - each service has a final stage of that name, built on the `runtime` stage;
 *   - the base image is a Node 24 slim image;
 *   - final stages run as a numeric non-root user (so runAsNonRoot can be verified) and start
 *     `node` in exec form;
 *   - the runtime and final stages install nothing (no apt-get, npm, pnpm, compilers) and copy only
 *     from the build stage;
 *   - COPY --from names an earlier stage.
 * Returns one line per problem, `line N: message`; none when the file passes.
 */
export function lintDockerfile(content: string, services: readonly string[]): string[] {
  const problems: string[] = [];
  const all = ValidationSeverity.ERROR;
  const settings: ValidatorSettings = {
    deprecatedMaintainer: all,
    directiveCasing: all,
    emptyContinuationLine: all,
    instructionCasing: all,
    instructionCmdMultiple: all,
    instructionEntrypointMultiple: all,
    instructionHealthcheckMultiple: all,
    instructionJSONInSingleQuotes: all,
    instructionWorkdirRelative: all,
  };
  for (const d of validate(content, settings)) problems.push(`line ${d.range.start.line + 1}: ${d.message}`);

  const file = DockerfileParser.parse(content);
  const nodeImage = file.getInitialARGs().find((a) => a.getProperty()?.getName() === 'NODE_IMAGE')?.getProperty()?.getValue() ?? '';
  if (!/^node:24(\.\d+){0,2}-[a-z]+-slim$/.test(nodeImage)) problems.push(`ARG NODE_IMAGE must be a Node 24 slim image (node:24.x.y-<debian>-slim), is '${nodeImage}'`);

  interface Stage { name: string; base: string; line: number; instructions: Array<{ keyword: string; args: string; line: number; copyFrom?: string | undefined; json: boolean }> }
  const stages: Stage[] = [];
  for (const instruction of file.getInstructions()) {
    const keyword = instruction.getKeyword();
    const line = instruction.getRange().start.line + 1;
    const args = instruction.getArgumentsContent() ?? '';
    if (keyword === 'FROM') {
      const from = file.getFROMs().find((f) => f.getRange().start.line + 1 === line)!;
      stages.push({ name: from.getBuildStage() ?? `#${stages.length}`, base: from.getImageName() ?? '', line, instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) continue;
    const copyFrom = keyword === 'COPY' ? ((instruction as Copy).getFromFlag()?.getValue() ?? undefined) : undefined;
    stage.instructions.push({ keyword, args, line, copyFrom, json: args.trim().startsWith('[') });
  }
  const names = stages.map((s) => s.name);
  stages.forEach((stage, index) => {
    for (const i of stage.instructions) {
      if (i.copyFrom !== undefined && !names.slice(0, index).includes(i.copyFrom)) problems.push(`line ${i.line}: COPY --from=${i.copyFrom} names no earlier stage`);
    }
  });

  const runtime = stages.find((s) => s.name === 'runtime');
  if (!runtime) problems.push("no stage named 'runtime' (the base of every service's image)");
  else if (runtime.base !== '${NODE_IMAGE}') problems.push(`line ${runtime.line}: the runtime stage must start from \${NODE_IMAGE}, not ${runtime.base}`);
  // A command a stage runs that installs or builds: a package manager or compiler at the start of a command.
  const installs = /(^|&&|;|\|\|)\s*(apt-get|apt|apk|npm|npx|pnpm|yarn|corepack|gcc|g\+\+|make|pip3?)\b/;
  for (const i of runtime?.instructions ?? []) {
    if (i.keyword === 'RUN' && (installs.test(i.args.replace(/\\\n/g, ' ')) || /\binstall\b/.test(i.args))) problems.push(`line ${i.line}: the runtime stage installs or builds something; build in the build stage`);
    if (i.keyword === 'COPY' || i.keyword === 'ADD') problems.push(`line ${i.line}: the runtime stage copies files; only the service stages copy their pack`);
  }
  for (const service of services) {
    const stage = stages.find((s) => s.name === service);
    if (!stage) {
      problems.push(`no stage named '${service}' (docker build --target ${service})`);
      continue;
    }
    if (stage.base !== 'runtime') problems.push(`line ${stage.line}: stage ${service} must be built FROM runtime, not ${stage.base}`);
    for (const i of stage.instructions) {
      if (i.keyword === 'RUN') problems.push(`line ${i.line}: stage ${service} runs a command; a final stage only copies its pack`);
      if (i.keyword === 'COPY' && i.copyFrom !== 'build') problems.push(`line ${i.line}: stage ${service} copies from ${i.copyFrom ?? 'the build context'}; only the build stage's pack belongs in the image`);
      if (i.keyword === 'ADD') problems.push(`line ${i.line}: stage ${service} uses ADD; COPY --from=build only`);
    }
    const users = stage.instructions.filter((i) => i.keyword === 'USER');
    const user = users[users.length - 1]?.args.trim() ?? '';
    const uid = user.split(':')[0] ?? '';
    if (!/^\d+$/.test(uid) || uid === '0') problems.push(`stage ${service} must end as a numeric non-root USER (uid:gid), is '${user || 'root'}'`);
    const entrypoints = stage.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
    const entry = entrypoints[entrypoints.length - 1];
    if (!entry || !entry.json || !/^\[\s*"node"/.test(entry.args.trim())) problems.push(`stage ${service} must start node in exec form (ENTRYPOINT ["node", ...])`);
  }
  return problems;
}
