// Controllers and the region-rack link: included after `shared.rs` into both backends, so
// every query here must be valid for SQLite and PostgreSQL.

use maas_store::{ControllerInfo, LeaseRecord, RackLinkRecord, RackStore, ServiceStatus, StaticAddress};

fn push_id_list<'a>(qb: &mut QueryBuilder<'a, Db>, ids: &'a [i64]) {
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

#[async_trait]
impl RackStore for StoreImpl {
    async fn set_controller_info(&self, info: &ControllerInfo) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO controller_info (node_id, version, url, registered) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node_id) DO UPDATE SET version = excluded.version, url = excluded.url, \
             registered = excluded.registered",
        )
        .bind(info.node_id)
        .bind(&info.version)
        .bind(&info.url)
        .bind(info.registered)
        .execute(&self.write)
        .await
        .map_err(convert::backend)?;
        Ok(())
    }

    async fn controller_infos(&self, node_ids: &[i64]) -> StoreResult<Vec<ControllerInfo>> {
        if node_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT node_id, version, url, registered FROM controller_info WHERE node_id IN (",
        );
        push_id_list(&mut qb, node_ids);
        qb.push(" ORDER BY node_id");
        let rows = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut infos = Vec::with_capacity(rows.len());
        for row in &rows {
            infos.push(ControllerInfo {
                node_id: col!(row, "node_id"),
                version: col!(row, "version"),
                url: col!(row, "url"),
                registered: col!(row, "registered"),
            });
        }
        Ok(infos)
    }

    async fn set_services(
        &self,
        node_id: i64,
        services: &[ServiceStatus],
        now: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        for service in services {
            sqlx::query(
                "INSERT INTO controller_services (node_id, name, status, status_info, updated) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node_id, name) DO UPDATE SET \
                 status = excluded.status, status_info = excluded.status_info, updated = excluded.updated",
            )
            .bind(node_id)
            .bind(&service.name)
            .bind(&service.status)
            .bind(&service.status_info)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(())
    }

    async fn services(&self, node_ids: &[i64]) -> StoreResult<Vec<(i64, ServiceStatus)>> {
        if node_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT node_id, name, status, status_info FROM controller_services WHERE node_id IN (",
        );
        push_id_list(&mut qb, node_ids);
        qb.push(" ORDER BY node_id, name");
        let rows = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut services = Vec::with_capacity(rows.len());
        for row in &rows {
            services.push((
                col!(row, "node_id"),
                ServiceStatus {
                    name: col!(row, "name"),
                    status: col!(row, "status"),
                    status_info: col!(row, "status_info"),
                },
            ));
        }
        Ok(services)
    }

    async fn region_heartbeat(
        &self,
        region: &str,
        rack_node_ids: &[i64],
        now: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        sqlx::query(
            "INSERT INTO region_processes (name, last_seen) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen",
        )
        .bind(region)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(convert::backend)?;
        for node_id in rack_node_ids {
            sqlx::query(
                "INSERT INTO rack_links (node_id, region, last_seen) VALUES ($1, $2, $3) \
                 ON CONFLICT (node_id, region) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .bind(*node_id)
            .bind(region)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(())
    }

    async fn drop_rack_link(&self, node_id: i64, region: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM rack_links WHERE node_id = $1 AND region = $2")
            .bind(node_id)
            .bind(region)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn live_regions(&self, since: Millis) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM region_processes WHERE last_seen >= $1 ORDER BY name")
                .bind(since)
                .fetch_all(&self.read)
                .await
                .map_err(convert::backend)?;
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            names.push(col!(row, "name"));
        }
        Ok(names)
    }

    async fn rack_links(
        &self,
        node_ids: &[i64],
        since: Millis,
    ) -> StoreResult<Vec<RackLinkRecord>> {
        if node_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new("SELECT node_id, region, last_seen FROM rack_links WHERE last_seen >= ");
        qb.push_bind(since);
        qb.push(" AND node_id IN (");
        push_id_list(&mut qb, node_ids);
        qb.push(" ORDER BY node_id, region");
        let rows = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut links = Vec::with_capacity(rows.len());
        for row in &rows {
            links.push(RackLinkRecord {
                node_id: col!(row, "node_id"),
                region: col!(row, "region"),
                last_seen: col!(row, "last_seen"),
            });
        }
        Ok(links)
    }

    async fn static_addresses(&self, subnet_ids: &[i64]) -> StoreResult<Vec<StaticAddress>> {
        if subnet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT n.id AS node_id, n.system_id, n.hostname, i.name AS interface_name, \
             i.mac_address, l.ip, l.subnet_id FROM ip_links l \
             JOIN interfaces i ON i.id = l.interface_id JOIN nodes n ON n.id = l.node_id \
             WHERE l.discovered = ",
        );
        qb.push_bind(false);
        qb.push(" AND l.ip IS NOT NULL AND l.ip <> '' AND l.mode IN ('auto', 'static') AND l.subnet_id IN (");
        push_id_list(&mut qb, subnet_ids);
        qb.push(" ORDER BY l.subnet_id, l.ip, l.id");
        let rows = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut addresses = Vec::with_capacity(rows.len());
        for row in &rows {
            addresses.push(StaticAddress {
                node_id: col!(row, "node_id"),
                system_id: col!(row, "system_id"),
                hostname: col!(row, "hostname"),
                interface_name: col!(row, "interface_name"),
                mac: col!(row, "mac_address"),
                ip: col!(row, "ip"),
                subnet_id: col!(row, "subnet_id"),
            });
        }
        Ok(addresses)
    }

    async fn record_lease(&self, lease: &LeaseRecord) -> StoreResult<Vec<i64>> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let rows = sqlx::query("SELECT id, node_id FROM interfaces WHERE mac_address = $1 ORDER BY id")
            .bind(&lease.mac)
            .fetch_all(&mut *tx)
            .await
            .map_err(convert::backend)?;
        let mut nodes = Vec::new();
        for row in &rows {
            let interface_id: i64 = col!(row, "id");
            let node_id: i64 = col!(row, "node_id");
            // One discovered address per interface and subnet: the latest lease.
            sqlx::query(
                "DELETE FROM ip_links WHERE interface_id = $1 AND subnet_id = $2 AND discovered = $3",
            )
            .bind(interface_id)
            .bind(lease.subnet_id)
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
            let ip = lease.committed.then_some(lease.ip.as_str());
            sqlx::query(
                "INSERT INTO ip_links (interface_id, node_id, mode, subnet_id, ip, discovered) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(interface_id)
            .bind(node_id)
            .bind("dhcp")
            .bind(lease.subnet_id)
            .bind(ip)
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
            if !nodes.contains(&node_id) {
                nodes.push(node_id);
            }
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(nodes)
    }
}
