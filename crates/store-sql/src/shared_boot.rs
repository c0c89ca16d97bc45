// Boot images: boot_resource, boot_resource_set, boot_resource_file, boot_source and
// boot_source_selection (migration 0003). Included after `shared.rs` into both backends,
// so every query here must be valid for SQLite and PostgreSQL.

fn boot_resource_from_row(row: &DbRow) -> StoreResult<maas_store::BootResource> {
    let rtype: i64 = col!(row, "rtype");
    let extra: String = col!(row, "extra");
    Ok(maas_store::BootResource {
        id: col!(row, "id"),
        rtype: maas_store::BootResourceType::from_number(rtype).ok_or_else(|| {
            maas_store::StoreError::InvalidData {
                what: format!("boot resource rtype {rtype}"),
            }
        })?,
        name: col!(row, "name"),
        architecture: col!(row, "architecture"),
        kflavor: col!(row, "kflavor"),
        bootloader_type: col!(row, "bootloader_type"),
        base_image: col!(row, "base_image"),
        extra: convert::json_to_map(&extra, "boot_resource.extra")?,
        last_deployed: col!(row, "last_deployed"),
    })
}

fn boot_resource_set_from_row(row: &DbRow) -> StoreResult<maas_store::BootResourceSet> {
    Ok(maas_store::BootResourceSet {
        id: col!(row, "id"),
        resource_id: col!(row, "resource_id"),
        version: col!(row, "version"),
        label: col!(row, "label"),
    })
}

fn boot_resource_file_from_row(row: &DbRow) -> StoreResult<maas_store::BootResourceFile> {
    let extra: String = col!(row, "extra");
    Ok(maas_store::BootResourceFile {
        id: col!(row, "id"),
        set_id: col!(row, "set_id"),
        filename: col!(row, "filename"),
        filetype: col!(row, "filetype"),
        sha256: col!(row, "sha256"),
        size: col!(row, "size"),
        extra: convert::json_to_map(&extra, "boot_resource_file.extra")?,
        complete: col!(row, "complete"),
    })
}

fn boot_source_from_row(row: &DbRow) -> StoreResult<maas_store::BootSource> {
    Ok(maas_store::BootSource {
        id: col!(row, "id"),
        url: col!(row, "url"),
        keyring_filename: col!(row, "keyring_filename"),
        keyring_data: col!(row, "keyring_data"),
        skip_keyring_verification: col!(row, "skip_keyring_verification"),
        priority: col!(row, "priority"),
        created: col!(row, "created"),
        updated: col!(row, "updated"),
    })
}

fn boot_source_selection_from_row(row: &DbRow) -> StoreResult<maas_store::BootSourceSelection> {
    let arches: String = col!(row, "arches");
    let subarches: String = col!(row, "subarches");
    let labels: String = col!(row, "labels");
    Ok(maas_store::BootSourceSelection {
        id: col!(row, "id"),
        boot_source_id: col!(row, "boot_source_id"),
        os: col!(row, "os"),
        release: col!(row, "release"),
        arches: convert::json_to_list(&arches, "boot_source_selection.arches")?,
        subarches: convert::json_to_list(&subarches, "boot_source_selection.subarches")?,
        labels: convert::json_to_list(&labels, "boot_source_selection.labels")?,
    })
}

/// NotFound unless a statement touched a row.
fn touched(done: <Db as sqlx::Database>::QueryResult, what: &str) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        Err(maas_store::StoreError::not_found(what))
    } else {
        Ok(())
    }
}

#[async_trait]
impl maas_store::BootResourceStore for StoreImpl {
    async fn boot_resources(&self) -> StoreResult<Vec<maas_store::BootResource>> {
        let rows = sqlx::query("SELECT * FROM boot_resource ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(boot_resource_from_row).collect()
    }

    async fn boot_resource(&self, id: i64) -> StoreResult<Option<maas_store::BootResource>> {
        let row = sqlx::query("SELECT * FROM boot_resource WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(boot_resource_from_row).transpose()
    }

    async fn find_boot_resource(
        &self,
        rtype: maas_store::BootResourceType,
        name: &str,
        architecture: &str,
    ) -> StoreResult<Option<maas_store::BootResource>> {
        let row = sqlx::query(
            "SELECT * FROM boot_resource WHERE rtype = $1 AND name = $2 AND architecture = $3",
        )
        .bind(rtype.number())
        .bind(name)
        .bind(architecture)
        .fetch_optional(&self.read)
        .await
        .map_err(convert::backend)?;
        row.as_ref().map(boot_resource_from_row).transpose()
    }

    async fn create_boot_resource(
        &self,
        new: maas_store::NewBootResource,
        now: Millis,
    ) -> StoreResult<maas_store::BootResource> {
        let row = sqlx::query(
            "INSERT INTO boot_resource (rtype, name, architecture, kflavor, bootloader_type, base_image, extra, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(new.rtype.number())
        .bind(&new.name)
        .bind(&new.architecture)
        .bind(&new.kflavor)
        .bind(&new.bootloader_type)
        .bind(&new.base_image)
        .bind(convert::map_to_json(&new.extra))
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        boot_resource_from_row(&row)
    }

    async fn update_boot_resource(&self, resource: &maas_store::BootResource) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE boot_resource SET kflavor = $1, bootloader_type = $2, base_image = $3, extra = $4 WHERE id = $5",
        )
        .bind(&resource.kflavor)
        .bind(&resource.bootloader_type)
        .bind(&resource.base_image)
        .bind(convert::map_to_json(&resource.extra))
        .bind(resource.id)
        .execute(&self.write)
        .await
        .map_err(convert::backend)?;
        touched(done, "boot resource")
    }

    async fn set_boot_resource_deployed(&self, id: i64, now: Millis) -> StoreResult<()> {
        let done = sqlx::query("UPDATE boot_resource SET last_deployed = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        touched(done, "boot resource")
    }

    async fn delete_boot_resource(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM boot_resource WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        touched(done, "boot resource")
    }

    async fn boot_resource_sets(&self, resource_id: i64) -> StoreResult<Vec<maas_store::BootResourceSet>> {
        let rows = sqlx::query("SELECT * FROM boot_resource_set WHERE resource_id = $1 ORDER BY version, id")
            .bind(resource_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(boot_resource_set_from_row).collect()
    }

    async fn boot_resource_set(&self, id: i64) -> StoreResult<Option<maas_store::BootResourceSet>> {
        let row = sqlx::query("SELECT * FROM boot_resource_set WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(boot_resource_set_from_row).transpose()
    }

    async fn create_boot_resource_set(
        &self,
        resource_id: i64,
        version: &str,
        label: &str,
        now: Millis,
    ) -> StoreResult<maas_store::BootResourceSet> {
        let row = sqlx::query(
            "INSERT INTO boot_resource_set (resource_id, version, label, created) VALUES ($1, $2, $3, $4) RETURNING *",
        )
        .bind(resource_id)
        .bind(version)
        .bind(label)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        boot_resource_set_from_row(&row)
    }

    async fn delete_boot_resource_set(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM boot_resource_set WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        touched(done, "boot resource set")
    }

    async fn boot_resource_files(&self, set_id: i64) -> StoreResult<Vec<maas_store::BootResourceFile>> {
        let rows = sqlx::query("SELECT * FROM boot_resource_file WHERE set_id = $1 ORDER BY id")
            .bind(set_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(boot_resource_file_from_row).collect()
    }

    async fn boot_resource_file(&self, id: i64) -> StoreResult<Option<maas_store::BootResourceFile>> {
        let row = sqlx::query("SELECT * FROM boot_resource_file WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(boot_resource_file_from_row).transpose()
    }

    async fn add_boot_resource_file(
        &self,
        set_id: i64,
        new: maas_store::NewBootResourceFile,
    ) -> StoreResult<maas_store::BootResourceFile> {
        let row = sqlx::query(
            "INSERT INTO boot_resource_file (set_id, filename, filetype, sha256, size, extra, complete) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(set_id)
        .bind(&new.filename)
        .bind(&new.filetype)
        .bind(&new.sha256)
        .bind(new.size)
        .bind(convert::map_to_json(&new.extra))
        .bind(new.complete)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        boot_resource_file_from_row(&row)
    }

    async fn set_boot_resource_files_complete(&self, sha256: &str, complete: bool) -> StoreResult<()> {
        sqlx::query("UPDATE boot_resource_file SET complete = $1 WHERE sha256 = $2")
            .bind(complete)
            .bind(sha256)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn boot_resource_hashes(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT sha256 FROM boot_resource_file ORDER BY sha256")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(|row| Ok(col!(row, "sha256"))).collect()
    }

    async fn boot_sources(&self) -> StoreResult<Vec<maas_store::BootSource>> {
        let rows = sqlx::query("SELECT * FROM boot_source ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(boot_source_from_row).collect()
    }

    async fn boot_source(&self, id: i64) -> StoreResult<Option<maas_store::BootSource>> {
        let row = sqlx::query("SELECT * FROM boot_source WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(boot_source_from_row).transpose()
    }

    async fn create_boot_source(
        &self,
        f: maas_store::BootSourceFields,
        now: Millis,
    ) -> StoreResult<maas_store::BootSource> {
        let row = sqlx::query(
            "INSERT INTO boot_source (url, keyring_filename, keyring_data, skip_keyring_verification, priority, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(&f.url)
        .bind(&f.keyring_filename)
        .bind(&f.keyring_data)
        .bind(f.skip_keyring_verification)
        .bind(f.priority)
        .bind(now)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        boot_source_from_row(&row)
    }

    async fn update_boot_source(
        &self,
        id: i64,
        f: maas_store::BootSourceFields,
        now: Millis,
    ) -> StoreResult<maas_store::BootSource> {
        let row = sqlx::query(
            "UPDATE boot_source SET url = $1, keyring_filename = $2, keyring_data = $3, \
             skip_keyring_verification = $4, priority = $5, updated = $6 WHERE id = $7 RETURNING *",
        )
        .bind(&f.url)
        .bind(&f.keyring_filename)
        .bind(&f.keyring_data)
        .bind(f.skip_keyring_verification)
        .bind(f.priority)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => boot_source_from_row(&row),
            None => Err(maas_store::StoreError::not_found("boot source")),
        }
    }

    async fn delete_boot_source(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM boot_source WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        touched(done, "boot source")
    }

    async fn boot_source_selections(&self, boot_source_id: i64) -> StoreResult<Vec<maas_store::BootSourceSelection>> {
        let rows = sqlx::query("SELECT * FROM boot_source_selection WHERE boot_source_id = $1 ORDER BY id")
            .bind(boot_source_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(boot_source_selection_from_row).collect()
    }

    async fn boot_source_selection(&self, id: i64) -> StoreResult<Option<maas_store::BootSourceSelection>> {
        let row = sqlx::query("SELECT * FROM boot_source_selection WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(boot_source_selection_from_row).transpose()
    }

    async fn create_boot_source_selection(
        &self,
        boot_source_id: i64,
        f: maas_store::BootSourceSelectionFields,
    ) -> StoreResult<maas_store::BootSourceSelection> {
        let row = sqlx::query(
            "INSERT INTO boot_source_selection (boot_source_id, os, release, arches, subarches, labels) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(boot_source_id)
        .bind(&f.os)
        .bind(&f.release)
        .bind(convert::list_to_json(&f.arches))
        .bind(convert::list_to_json(&f.subarches))
        .bind(convert::list_to_json(&f.labels))
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        boot_source_selection_from_row(&row)
    }

    async fn update_boot_source_selection(
        &self,
        id: i64,
        f: maas_store::BootSourceSelectionFields,
    ) -> StoreResult<maas_store::BootSourceSelection> {
        let row = sqlx::query(
            "UPDATE boot_source_selection SET os = $1, release = $2, arches = $3, subarches = $4, labels = $5 \
             WHERE id = $6 RETURNING *",
        )
        .bind(&f.os)
        .bind(&f.release)
        .bind(convert::list_to_json(&f.arches))
        .bind(convert::list_to_json(&f.subarches))
        .bind(convert::list_to_json(&f.labels))
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => boot_source_selection_from_row(&row),
            None => Err(maas_store::StoreError::not_found("boot source selection")),
        }
    }

    async fn delete_boot_source_selection(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM boot_source_selection WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        touched(done, "boot source selection")
    }
}
