fn main() -> anyhow::Result<()> {
    anyhow::bail!("kuboard-jepsen: no workloads yet")
}
