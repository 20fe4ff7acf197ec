// A local Serverless plugin: before `serverless package` (and so `deploy`) of any stage but
// `local`, refuses the demo policy, a policy that does not load, a policy S3 URI that is not one
// and an empty credentials secret (lib/deploy/package-guard.ts says why each). It reads the
// environment the functions will get, after osls resolved the params.
import { tsImport } from 'tsx/esm/api';

class PackageGuardPlugin {
  constructor(serverless, options = {}) {
    this.serverless = serverless;
    this.options = options;
    this.hooks = { 'before:package:initialize': () => this.check() };
  }

  async check() {
    const { packageProblems } = await tsImport('./package-guard.ts', import.meta.url);
    const provider = this.serverless.getProvider('aws');
    const environment = this.serverless.service.provider.environment ?? {};
    const stage = provider.getStage();
    const problems = await packageProblems({
      stage,
      serviceDir: this.serverless.serviceDir,
      policyFile: environment.POLICY_FILE,
      policyS3Uri: environment.POLICY_S3_URI,
      credentialsSecretArn: environment.SWR_CREDENTIALS_SECRET_ARN,
    });
    if (problems.length > 0)
      throw new this.serverless.classes.Error(
        `refusing to package stage "${stage}":\n  - ${problems.join('\n  - ')}`,
      );
  }
}

export default PackageGuardPlugin;
