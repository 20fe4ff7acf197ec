// A local Serverless plugin, run before `serverless package` (and so `deploy`):
// - for any stage but `local`, refuses the demo policy, a policy that does not load, a policy S3
//   URI that is not one and an empty credentials secret (lib/deploy/package-guard.ts says why);
// - compiles the policy (custom.policy.source, YAML or JSON) to JSON at custom.policy.packaged,
//   the file each function zip carries and reads (lib/deploy/compile-policy.ts): no YAML parser at
//   cold start. With a policy S3 object the functions read the object instead; the file is then
//   compiled only if it loads.
// It reads the values the functions will get, after osls resolved the params.
import { tsImport } from 'tsx/esm/api';

class PackageGuardPlugin {
  constructor(serverless, options = {}) {
    this.serverless = serverless;
    this.options = options;
    this.hooks = { 'before:package:initialize': () => this.check() };
  }

  async check() {
    const { packageProblems } = await tsImport('./package-guard.ts', import.meta.url);
    const { compilePolicyFile } = await tsImport('./compile-policy.ts', import.meta.url);
    const provider = this.serverless.getProvider('aws');
    const environment = this.serverless.service.provider.environment ?? {};
    const policy = this.serverless.service.custom?.policy ?? {};
    const stage = provider.getStage();
    const policyS3Uri = environment.POLICY_S3_URI;
    const refuse = (problems) =>
      new this.serverless.classes.Error(
        `refusing to package stage "${stage}":\n  - ${problems.join('\n  - ')}`,
      );
    const problems = await packageProblems({
      stage,
      serviceDir: this.serverless.serviceDir,
      policyFile: policy.source,
      policyS3Uri,
      credentialsSecretArn: environment.SWR_CREDENTIALS_SECRET_ARN,
    });
    if (problems.length > 0) throw refuse(problems);
    try {
      await compilePolicyFile({
        serviceDir: this.serverless.serviceDir,
        source: policy.source,
        target: policy.packaged,
      });
    } catch (error) {
      const s3 = typeof policyS3Uri === 'string' && policyS3Uri.trim() !== '';
      if (error?.name !== 'ConfigError') throw error;
      if (!s3)
        throw refuse([
          `the policy ${policy.source} does not load: ${[error.message.split('\n')[0], ...error.problems].join('; ')}`,
        ]);
    }
  }
}

export default PackageGuardPlugin;
